"""Auto-instrumentation: OpenAI and Anthropic clients (optional extras) and an OTel span
processor. Each module imports its client library lazily."""
