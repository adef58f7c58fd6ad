"""Auto-instrumentation: OpenAI, Anthropic and google-genai clients, LangChain/LangGraph
callbacks, a LiteLLM callback, an OpenAI Agents SDK tracing processor (each an optional extra)
and an OTel span processor. Each module imports its library lazily or only when imported."""
