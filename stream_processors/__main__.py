"""``python -m agentstream.stream_processors``: the worker, settings from the environment."""
from .app import run_worker
from .settings import ProcessorsSettings

if __name__ == "__main__":
    run_worker(ProcessorsSettings())
