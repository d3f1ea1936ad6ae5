"""A Celery worker that believes it has a CUDA device, on a machine without one:

    python -m tests.system.cuda_lookalike_worker [worker options]

`torch.cuda.is_available()` says True and moving a model or a tensor to "cuda" keeps it on
the CPU. So everything the embedding code decides from the resolved device (EMBEDDING_DEVICE=
auto -> cuda; int8 is CPU only, so the id has no "+int8") is decided as on a real GPU worker,
and the model still runs. The prefork pool inherits the patch (fork)."""

from __future__ import annotations

import sys
from typing import Any

import torch


def _on_cpu(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("cuda"):
        return "cpu"
    if isinstance(value, torch.device) and value.type == "cuda":
        return torch.device("cpu")
    return value


def _redirected(method: Any) -> Any:
    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        args = tuple(_on_cpu(arg) for arg in args)
        if "device" in kwargs:
            kwargs["device"] = _on_cpu(kwargs["device"])
        return method(self, *args, **kwargs)

    return to


def pretend_cuda() -> None:
    torch.cuda.is_available = lambda: True
    torch.nn.Module.to = _redirected(torch.nn.Module.to)  # type: ignore[method-assign]
    torch.Tensor.to = _redirected(torch.Tensor.to)  # type: ignore[method-assign]


if __name__ == "__main__":
    pretend_cuda()
    from services.background.celery_worker import main

    main(sys.argv[1:])
