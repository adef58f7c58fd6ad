"""``python -m agentstream.api.gateway run``: the same as ``agentstream gateway run``."""
from .cli import gateway_app

gateway_app()
