"""Serving: the vLLM OpenAI server as its own process, and publishing new policy weights.

* ``tether.serving.server``: ``VLLMServer`` starts ``python -m vllm.entrypoints.openai.api_server``
  from the vLLM environment (``.venv-vllm``) on 127.0.0.1, waits until it is ready and stops it.
* ``tether.serving.publish``: ``publish_weights`` / ``WeightPublisher`` make new weights live
  without a restart (runtime LoRA adapters on the server, in-place reload in-process).
* ``tether.serving.cli``: the ``tether serve-model`` command.
"""
