"""Where ``agentstream runs`` finds the query API and its key, and the HTTP client it uses.

Settings, first found wins: the command-line option, the environment (``AGENTSTREAM_API_URL``,
``AGENTSTREAM_API_KEY``, ``AGENTSTREAM_PSEUDONYM_KEY``), then the config file: the path in
``AGENTSTREAM_CONFIG``, else ``$XDG_CONFIG_HOME/agentstream/config.toml``, else
``~/.config/agentstream/config.toml``::

    api_url = "https://agentstream.example.com"
    api_key = "ask_..."
    pseudonym_key = "a long random secret"   # for export --anonymize

Only HTTP is spoken, so the commands work from any machine that can reach the API.
"""
from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class CliError(Exception):
    """A failure to show the user as one line, then exit non-zero."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("AGENTSTREAM_CONFIG"):
        return Path(env["AGENTSTREAM_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "agentstream" / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read config file {path}: {exc}") from exc
    if data.get("api_key") and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CliError(f"{path} holds an API key but is readable by others: chmod 600 {path}")
    return data


@dataclass
class ClientSettings:
    api_url: str
    api_key: str | None
    pseudonym_key: str | None = None
    timeout_s: float = 30.0


def resolve(api_url: str | None, api_key: str | None,
            env: Mapping[str, str] | None = None) -> ClientSettings:
    env = os.environ if env is None else env
    conf = read_config(config_path(env))
    url = api_url or env.get("AGENTSTREAM_API_URL") or conf.get("api_url") or DEFAULT_URL
    key = api_key or env.get("AGENTSTREAM_API_KEY") or conf.get("api_key")
    pseudo = env.get("AGENTSTREAM_PSEUDONYM_KEY") or conf.get("pseudonym_key")
    return ClientSettings(str(url).rstrip("/"), key, pseudo)


def _message(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error") or {}
        return f"{resp.status_code} {err.get('code', '')}: {err.get('message', resp.text)}"
    except ValueError:
        return f"{resp.status_code}: {resp.text[:300]}"


def run_path(run_id: str, *rest: str) -> str:
    return "/v1/runs/" + "/".join([quote(run_id, safe="")] + [quote(r, safe="") for r in rest])


class ApiClient:
    def __init__(self, settings: ClientSettings, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.api_key:
            raise CliError("no API key: pass --api-key, set AGENTSTREAM_API_KEY, or put api_key in "
                           f"{config_path()}")
        self.settings = settings
        self.http = httpx.Client(base_url=settings.api_url, timeout=settings.timeout_s,
                                 headers={"Authorization": f"Bearer {settings.api_key}",
                                          "User-Agent": "agentstream-cli/1"},
                                 transport=transport)

    def _check(self, resp: httpx.Response) -> httpx.Response:
        if resp.status_code >= 400:
            raise CliError(_message(resp))
        return resp

    def get(self, path: str, **params: Any) -> Any:
        try:
            return self._check(self.http.get(path, params=_clean(params))).json()
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.settings.api_url}: {exc}") from exc

    def post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return self._check(self.http.post(path, json=body)).json()
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.settings.api_url}: {exc}") from exc

    def stream_lines(self, path: str, params: dict[str, Any],
                     headers: dict[str, str] | None = None) -> Iterator[bytes]:
        """Lines of a streamed response (each with its newline), as they arrive."""
        try:
            with self.http.stream("GET", path, params=_clean(params), headers=headers or {},
                                  timeout=httpx.Timeout(self.settings.timeout_s, read=None)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise CliError(_message(resp))
                for line in resp.iter_lines():
                    if line:
                        yield line.encode() + b"\n"
        except httpx.HTTPError as exc:
            raise CliError(f"export from {self.settings.api_url} failed: {exc}") from exc

    def close(self) -> None:
        self.http.close()


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and v != [] and v is not False}
