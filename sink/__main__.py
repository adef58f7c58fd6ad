"""``python -m agentstream.sink`` = ``agentstream sink run`` without loading the other parts' CLIs."""
import sys

from .cli import run_standalone

run_standalone(embedded="--embedded" in sys.argv[1:])
