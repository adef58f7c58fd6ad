"""Seeded generators of the secret and PII formats a probe found stored verbatim, and of the
look-alikes that must survive them (test_redaction_formats.py holds the engine to both). Here the
helpers and the credential formats (files, AWS, other languages); redaction_encoding_cases.py the
numbers and encodings; redaction_format_lookalikes.py the look-alikes and the generators by name.

Each generator returns ``(text, values)``: every value is a secret or PII that must not survive
redaction (``outcome`` of bench/redaction_scoring.py, lenient and strict). Near-miss generators
return a text that must come back unchanged. Values are drawn fresh from the seed; the surroundings
(files, JSON escaping, CRLF, log prefixes, separators) vary independently of the values.
"""
from __future__ import annotations

import base64
import json
import random
import string
from typing import Callable

LOW, UP, DIG = string.ascii_lowercase, string.ascii_uppercase, string.digits
B62 = LOW + UP + DIG
B64 = B62 + "+/"
HEX = "0123456789abcdef"
WORDS = ("maple", "violet", "harbor", "copper", "tangerine", "lantern", "orbit", "meadow", "quartz", "falcon",
         "juniper", "saffron", "glacier", "thimble", "walrus", "cobalt", "pepper", "sundial")
Case = tuple[str, list[str]]


def rs(r: random.Random, alphabet: str, n: int) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


def password(r: random.Random, spaces: bool = False) -> str:
    """A password a person or a generator chose: random draws, words with digits and symbols."""
    kind = r.randrange(6 if spaces else 5)
    if kind == 0:
        return rs(r, B62, r.randint(12, 28))
    if kind == 1:
        return f"{r.choice(WORDS).title()}{r.randint(10, 9999)}{r.choice('!#$%*?@^')}"
    if kind == 2:
        return rs(r, B62 + "!#$%&*+-.?@^_~", r.randint(10, 24))
    if kind == 3:
        return "-".join(r.sample(WORDS, 3)) + str(r.randint(1, 99))
    if kind == 4:
        return rs(r, LOW, 3) + rs(r, DIG, 3) + rs(r, UP, 3) + rs(r, LOW + DIG, r.randint(3, 9))
    return " ".join(r.sample(WORDS, 4))


def carried(r: random.Random, text: str) -> str:
    """A file's text where an agent's telemetry holds it: as is, with CRLF, as a JSON string
    (newlines escaped), in a markdown fence, after the shell command that printed it."""
    way = r.randrange(5)
    if way == 1:
        return text.replace("\n", "\r\n")
    if way == 2:
        return json.dumps({"stdout": text, "exit_code": 0})
    if way == 3:
        return f"Here is the file:\n```\n{text}\n```\nLet me know."
    if way == 4:
        return f"$ cat {r.choice(['~/.config/app/creds', 'out.txt', '/tmp/x'])}\n{text}"
    return text


# ---- 1. credential files ---------------------------------------------------------------------

HOSTS = ("api.github.com", "ftp.example.org", "registry.internal", "10.0.4.17", "pypi.company.io",
         "files.acme-corp.net", "urs.earthdata.nasa.gov", "gitlab.com", "bitbucket.org", "s3.eu-west-1.amazonaws.com")
USERS = ("alice", "deploy", "ci-bot", "jdoe", "svc_backup", "anonymous", "build", "ops.team", "root", "m.kowalski")


def netrc(r: random.Random) -> Case:
    entries, values = [], []
    for _ in range(r.randint(1, 3)):
        host, user = r.choice(HOSTS), r.choice(USERS)
        pw = password(r)
        quoted = r.random() < 0.15
        if quoted:
            pw = password(r, spaces=True)
        shown = f'"{pw}"' if quoted or " " in pw else pw
        values.append(pw)
        pairs = [("login", user), ("password", shown)]
        if r.random() < 0.3:
            pairs.reverse()
        if r.random() < 0.2:
            pairs.insert(1, ("account", r.choice(["prod", "acct-42", "billing"])))
        if r.random() < 0.1:
            pairs.insert(0, ("port", str(r.choice([21, 443, 8443]))))
        head = "default" if r.random() < 0.1 else f"machine {host}"
        if r.random() < 0.5:
            entries.append(head + " " + " ".join(f"{k} {v}" for k, v in pairs))
        else:
            ind = r.choice(["  ", "    ", "\t"])
            entries.append(head + "\n" + "\n".join(f"{ind}{k} {v}" for k, v in pairs))
    text = "\n".join(entries) + "\n"
    if r.random() < 0.3:
        text = f"# {r.choice(['~/.netrc', '%HOME%/_netrc', '.netrc for curl'])}\n" + text
    return carried(r, text), values


def github_netrc(r: random.Random) -> Case:
    # GitHub's own convention: the token is the login, the password a fixed word
    tok = rs(r, B62, 40)
    return carried(r, f"machine github.com\n  login {tok}\n  password x-oauth-basic\n"), [tok]


def pgpass(r: random.Random) -> Case:
    lines, values = [], []
    if r.random() < 0.4:
        lines.append("# hostname:port:database:username:password")
    for _ in range(r.randint(1, 4)):
        host = r.choice(["localhost", "127.0.0.1", "*", "db.prod.internal", "pg-primary.example.com",
                         "10.12.0.5", "analytics.c9xk2.eu-west-1.rds.amazonaws.com", "[::1]"])
        port = r.choice(["5432", "6432", "5433", "*", "15432"])
        db = r.choice(["*", "app", "postgres", "analytics_db", "orders", "replication"])
        user = r.choice(["postgres", "app_user", "*", "replicator", "readonly", "etl"])
        pw = password(r)
        if r.random() < 0.15:
            pw = pw[:5] + "\\:" + pw[5:]  # an escaped colon inside the password
        values.append(pw)
        lines.append(f"{host}:{port}:{db}:{user}:{pw}")
    text = "\n".join(lines) + "\n"
    way = r.randrange(3)
    if way == 1:
        line = lines[-1]
        return f"echo '{line}' >> ~/.pgpass && chmod 600 ~/.pgpass", [values[-1]]
    if way == 2:
        return json.dumps({"path": r.choice(["/root/.pgpass", "%APPDATA%\\postgresql\\pgpass.conf"]),
                           "content": text}), values
    return carried(r, text), values


def _b64_lines(r: random.Random, n_bytes: int) -> list[str]:
    blob = base64.b64encode(r.randbytes(n_bytes)).decode()
    return [blob[i:i + 64] for i in range(0, len(blob), 64)]


def putty_key(r: random.Random) -> Case:
    version = r.choice([2, 3])
    alg = r.choice(["ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-dss"])
    enc = r.choice(["none", "none", "aes256-cbc"])
    pub = _b64_lines(r, r.choice([51, 104, 279]))
    priv = _b64_lines(r, r.choice([48, 64, 117, 656]))
    mac = rs(r, HEX, 64 if version == 3 else 40)
    head = [f"PuTTY-User-Key-File-{version}: {alg}", f"Encryption: {enc}",
            f"Comment: {r.choice(['rsa-key-20240131', 'imported-openssh-key', 'deploy@ci'])}",
            f"Public-Lines: {len(pub)}", *pub]
    if version == 3 and enc != "none":
        head += ["Key-Derivation: Argon2id", "Argon2-Memory: 8192", "Argon2-Passes: 21",
                 "Argon2-Parallelism: 1", f"Argon2-Salt: {rs(r, HEX, 32)}"]
    lines = head + [f"Private-Lines: {len(priv)}", *priv, f"Private-MAC: {mac}"]
    values = [line for line in priv if len(line) >= 16] + [mac]
    if r.random() < 0.2:  # cut short, as a log line or a preview cuts it
        lines = lines[:len(head) + 2]
        values = [priv[0]]
    return carried(r, "\n".join(lines) + "\n"), values


YAML_KEYS = ("password", "db_password", "private_key", "client_secret", "api_token", "secret", "ssh_private_key",
             "adminPassword", "signing_key", "passphrase", "token", "encryption_key", "tls.key", "credentials")


def yaml_block(r: random.Random) -> Case:
    key = r.choice(YAML_KEYS)
    indicator = r.choice(["|", "|-", "|+", ">", ">-", "|2", ">+"])
    base = r.choice(["", "  ", "    "])
    step = r.choice(["  ", "    "])
    kind = 0 if key == "tls.key" else r.randrange(3)  # a bare "key" holds key material, not a word
    if kind == 0:
        body = _b64_lines(r, r.choice([48, 96, 192]))
    elif kind == 1:
        body = [password(r)]
    else:
        body = [password(r) for _ in range(r.randint(2, 3))]
    if indicator == "|2":
        step = "  "
    head = [f"{base[:-2]}stringData:"] if base else [r.choice(["config:", "secrets:", "db:"])]
    if not base:
        base = "  "
    lines = head + [f"{base}username: {r.choice(USERS)}", f"{base}{key}: {indicator}"]
    lines += [f"{base}{step}{b}" for b in body]
    if r.random() < 0.5:
        lines.append(f"{base}host: db.internal")
    text = "\n".join(lines) + "\n"
    return carried(r, text), list(body)


# ---- 2. AWS secret access keys ---------------------------------------------------------------

def aws_pair(r: random.Random) -> tuple[str, str]:
    kid = r.choice(["AKIA", "ASIA"]) + rs(r, UP + DIG, 16)
    while True:
        secret = rs(r, B64, 40)
        if any(c.isupper() for c in secret) and any(c.islower() for c in secret) and any(c.isdigit() for c in secret):
            return kid, secret


AWS_FORMS: tuple[Callable[[str, str], str], ...] = (
    lambda k, s: f"aws configure set aws_secret_access_key {s}",
    lambda k, s: f"aws configure set aws_access_key_id {k} && aws configure set aws_secret_access_key {s} --profile ci",
    lambda k, s: f"export AWS_ACCESS_KEY_ID={k}\nexport AWS_SECRET_ACCESS_KEY={s}",
    lambda k, s: f"--access-key-id {k} --secret-access-key {s}",
    lambda k, s: f"rclone config create s3 s3 access_key_id {k} secret_access_key {s}",
    lambda k, s: json.dumps({"Credentials": {"AccessKeyId": k, "SecretAccessKey": s, "Expiration": "2026-12-07T15:00:00Z"}}),
    lambda k, s: f"User name,Password,Access key ID,Secret access key\nci-bot,,{k},{s}",
    lambda k, s: f"Access key ID,Secret access key\n{k},{s}\n",
    lambda k, s: f"{k} {s}",
    lambda k, s: f"{k}:{s}",
    lambda k, s: f"{k}\t{s}",
    lambda k, s: f"creds {k} / {s}",
    lambda k, s: f'new BasicAWSCredentials("{k}", "{s}")',
    lambda k, s: f"boto3.client('s3', aws_access_key_id='{k}', aws_secret_access_key='{s}')",
    lambda k, s: f"Set-AWSCredential -AccessKey {k} -SecretKey {s} -StoreAs default",
    lambda k, s: f'provider "aws" {{\n  access_key = "{k}"\n  secret_key = "{s}"\n}}',
    lambda k, s: f"[default]\naws_access_key_id={k}\naws_secret_access_key={s}\n",
    lambda k, s: f"aws_secret_access_key: {s}",
    lambda k, s: f"access key {k}, secret {s}",
    lambda k, s: f"docker run -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY={s} img",
    lambda k, s: f"AWS_SECRET_ACCESS_KEY {s}",
    lambda k, s: f'{{"aws_access_key_id": "{k}", "aws_secret_access_key": "{s}"}}',
    lambda k, s: f"s3cmd --access_key={k} --secret_key={s} ls",
    lambda k, s: f"the key pair is {k} and {s}",
    lambda k, s: f"--secret-access-key={s}",
    lambda k, s: f"aws.secretAccessKey = {s}",
)


def aws_secret(r: random.Random) -> Case:
    k, s = aws_pair(r)
    text = r.choice(AWS_FORMS)(k, s)
    return (json.dumps({"output": text}) if r.random() < 0.2 else text), [s]


# ---- 3. passwords named in other languages ---------------------------------------------------

LOCALIZED = ("mot de passe", "Mot de passe", "contraseña", "Contraseña", "Passwort", "Kennwort", "senha", "Senha",
             "пароль", "Пароль", "密码", "パスワード", "wachtwoord", "Wachtwoord", "lösenord", "Lösenord", "hasło",
             "Hasło", "parola", "Parola", "şifre", "Şifre", "salasana", "heslo", "Heslo", "jelszó", "adgangskode",
             "passord", "비밀번호", "κωδικός πρόσβασης", "mật khẩu", "kata sandi", "парола", "lozinka",
             "DB-Passwort", "数据库密码", "Root-Kennwort", "mot de passe administrateur", "contraseña de la base de datos",
             "senha do banco")
SEPARATORS = (": ", ":", " : ", "\u00a0: ", "：", "： ", " = ", "=")


def localized_password(r: random.Random) -> Case:
    word = r.choice(LOCALIZED)
    v = password(r)
    sep = r.choice(SEPARATORS)
    form = r.randrange(5)
    if form == 0:
        text = f"{word}{sep}{v}"
    elif form == 1:
        text = f"Utilisateur : admin\n{word}{sep}{v}\nServeur : db.local"
    elif form == 2:
        text = f"{word}{sep}'{v}'" if r.random() < 0.5 else f'{word}{sep}"{v}"'
    elif form == 3:
        text = json.dumps({"message": f"{word}{sep}{v}"}, ensure_ascii=r.random() < 0.3)
    else:
        text = f"[INFO] login ok ({word}{sep}{v})"
    return text, [v]


def localized_attribute(r: random.Random) -> tuple[str, str]:
    """An attribute key in another language and its secret value."""
    key = r.choice(["Passwort", "contraseña", "пароль", "密码", "senha", "wachtwoord", "hasło", "mot_de_passe",
                    "db.Passwort", "app.contraseña", "lösenord", "パスワード", "parola", "şifre"])
    return key, password(r)
