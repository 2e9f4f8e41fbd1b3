"""The GPUs a process sees, mapped to the physical GPUs NVML measures (by UUID).

NVML ignores ``CUDA_VISIBLE_DEVICES`` and may order GPUs differently from CUDA, so
GPUs are mapped by UUID. NVML cannot measure a MIG slice: the whole parent GPU is
measured and labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from greenprof.sensors.nvml_api import NvmlApi, NvmlHandle, text


@dataclass(frozen=True, slots=True)
class VisibleGpu:
    """A GPU the training process sees, and the physical GPU NVML measures for it."""

    index: int
    """The CUDA index in this process (position in CUDA_VISIBLE_DEVICES): device ``gpu:<index>``."""
    handle: NvmlHandle
    """NVML handle of the physical GPU (the parent GPU for a MIG slice)."""
    uuid: str
    """UUID of the physical GPU (``GPU-…``)."""
    mig_id: str | None = None
    """The MIG slice the process uses, as written in CUDA_VISIBLE_DEVICES."""

    @property
    def device(self) -> str:
        """Device id, ``gpu:<index>``."""
        return f"gpu:{self.index}"

    @property
    def note(self) -> str:
        """Caveat to store with the device (the MIG label), or empty."""
        if self.mig_id is None:
            return ""
        return (
            f"MIG slice {self.mig_id}: NVML measures only the whole parent GPU {self.uuid};"
            " energy includes other slices"
        )


@dataclass(frozen=True, slots=True)
class GpuMapping:
    """The process's GPUs and what was decided while mapping them."""

    gpus: tuple[VisibleGpu, ...]
    notes: tuple[str, ...] = ()


def _resolve_gpu_uuid(entry: str, uuids: list[str]) -> int | None:
    """NVML index of the one GPU whose UUID starts with ``entry`` (CUDA accepts unique prefixes)."""
    hits = [i for i, uuid in enumerate(uuids) if uuid.lower().startswith(entry.lower())]
    return hits[0] if len(hits) == 1 else None


def _resolve_entry(
    pynvml: NvmlApi, entry: str, handles: list[NvmlHandle], uuids: list[str]
) -> tuple[NvmlHandle, str, str | None] | None:
    """``(physical handle, physical uuid, mig id)`` for one CUDA_VISIBLE_DEVICES entry, or None."""
    index: int | None
    mig_id: str | None = None
    if entry.isdigit():
        index = int(entry) if int(entry) < len(handles) else None
    elif entry.startswith("GPU-"):
        index = _resolve_gpu_uuid(entry, uuids)
    elif entry.startswith("MIG-GPU-"):  # legacy (before R470): MIG-GPU-<uuid>/<gi>/<ci>
        index = _resolve_gpu_uuid(entry[len("MIG-") :].split("/", 1)[0], uuids)
        mig_id = entry
    elif entry.startswith("MIG-"):
        try:
            mig = pynvml.nvmlDeviceGetHandleByUUID(entry)
            parent = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
            return parent, text(pynvml.nvmlDeviceGetUUID(parent)), entry
        except pynvml.NVMLError:
            return None
    else:
        return None
    return None if index is None else (handles[index], uuids[index], mig_id)


def _order_note(pynvml: NvmlApi, handles: list[NvmlHandle], cuda_device_order: str | None) -> str:
    """A warning when integer CUDA ids may not be NVML indices (mixed models, FASTEST_FIRST)."""
    if cuda_device_order == "PCI_BUS_ID" or len(handles) < 2:
        return ""
    names = sorted({text(pynvml.nvmlDeviceGetName(h)) for h in handles})
    if len(names) < 2:
        return ""
    return (
        f"this node mixes GPU models ({', '.join(names)}) and CUDA_DEVICE_ORDER is not"
        " PCI_BUS_ID: CUDA's default FASTEST_FIRST order can differ from NVML's, so integer"
        " GPU ids may name other GPUs than measured; set CUDA_DEVICE_ORDER=PCI_BUS_ID or use"
        " GPU-<uuid> ids"
    )


def visible_gpus(
    pynvml: NvmlApi, cuda_visible_devices: str | None, cuda_device_order: str | None = None
) -> GpuMapping:
    """Map the process's CUDA devices to the physical GPUs NVML measures.

    ``cuda_visible_devices`` is parsed as CUDA does: comma-separated entries, each
    an NVML index, ``GPU-<uuid>`` (or a unique prefix of it), ``MIG-<uuid>`` or the
    legacy ``MIG-GPU-<uuid>/<gi>/<ci>``; the first entry that names no GPU ends the
    list. None (unset) means all GPUs; an empty string means none. A physical GPU
    listed twice (e.g. two MIG slices of one GPU) is measured once, under its first
    index, so its energy is not counted twice. NVML must be initialized.
    """
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    uuids = [text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
    notes: list[str] = []
    resolved: list[tuple[NvmlHandle, str, str | None]]
    if cuda_visible_devices is None:
        resolved = [(h, u, None) for h, u in zip(handles, uuids, strict=True)]
        uses_integers = True
    else:
        resolved = []
        entries = [e.strip() for e in cuda_visible_devices.split(",")]
        if entries == [""]:
            notes.append("CUDA_VISIBLE_DEVICES is empty: no GPU is visible to this process")
            entries = []
        for entry in entries:
            target = _resolve_entry(pynvml, entry, handles, uuids)
            if target is None:
                notes.append(
                    f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU on this node:"
                    " it and the entries after it are ignored, as CUDA does"
                )
                break
            resolved.append(target)
        uses_integers = any(e.isdigit() for e in entries[: len(resolved)])
    gpus: list[VisibleGpu] = []
    first_index: dict[str, int] = {}
    for index, (handle, uuid, mig_id) in enumerate(resolved):
        if uuid in first_index:
            notes.append(
                f"gpu:{index} is the same physical GPU {uuid} as gpu:{first_index[uuid]}:"
                f" measured once, as gpu:{first_index[uuid]}"
            )
            continue
        first_index[uuid] = index
        gpus.append(VisibleGpu(index=index, handle=handle, uuid=uuid, mig_id=mig_id))
    order_note = _order_note(pynvml, handles, cuda_device_order) if uses_integers else ""
    if order_note and gpus:
        notes.append(order_note)
    return GpuMapping(gpus=tuple(gpus), notes=tuple(notes))
