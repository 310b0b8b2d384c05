"""Shared memory between processes of one host: a tensor crosses in a segment both processes
have mapped instead of through loopback TCP.

Why a pool: on loopback a 4.9 MB tensor costs ~2.6 ms through the kernel's socket copies, and a
fresh shared-memory segment costs more still (faulting its pages in took 2.8–6 ms per 4.9 MB
here). A copy into pages already faulted in takes ~0.4 ms, so the sender keeps its segments and
reuses one as soon as the receiver says it has copied the tensor out.

Each segment is a memfd: anonymous memory the kernel frees when the last process holding it
exits, so an agent that is killed leaks nothing. A receiver reads a tensor in place (a copy
out would cost as much again) and the segment goes back to the sender when the last array
viewing it is gone. A receiver opens a sender's segment through
``/proc/<pid>/fd/<fd>``; that works only on the same host, in the same pid namespace, with the
right to read the sender's files. The transport's handshake tries exactly that on a probe
segment before either side uses shared memory (see :mod:`qsplit.runtime._transport`). A segment
starts with a magic and a random id, so a stale or forged reference is refused, not read.
"""

from __future__ import annotations

import contextlib
import functools
import math
import mmap
import os
import secrets
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from qsplit.runtime._wire import SharedRef

MAGIC = b"QSPSHM01"
HEADER_BYTES = 64
"""Magic and id; 64 bytes keep the tensor data aligned for ORT's vectorised kernels."""
NAME = "qsplit-segment"
CHUNK_BYTES = 2**20
"""Segment sizes are whole MiB, so tensors of nearby sizes share segments."""
MIN_SHARED_BYTES = 64 * 2**10
"""Smaller tensors travel in frames: below this the copy saved is worth less than the release
message it costs."""
POOL_BYTES = 512 * 2**20
POOL_IDLE_S = 30.0
"""A free segment unused this long is given back to the kernel (the pool shrinks when idle)."""
"""Most memory one process's segments may hold; beyond it tensors travel in frames."""
MAPPINGS = 64
"""Peer segments a receiver keeps mapped (the least recently used is unmapped first)."""
AVAILABLE = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")
"""Linux only: memfd and /proc are what make a segment reachable by another process."""


@dataclass
class _Segment:
    ref: SharedRef
    memory: mmap.mmap
    address: int
    """Where its data starts in this process: an array there is this segment's."""
    lent_to: set[int] = field(default_factory=set)
    """Pids of the receivers that have not yet released it."""
    held: bool = False
    """An array of this process writes or reads it (see :meth:`SegmentPool.buffer`)."""
    used: float = field(default_factory=time.monotonic)
    """When it was last lent or handed out: a pool gives back segments idle for long."""

    @property
    def capacity(self) -> int:
        return len(self.memory) - HEADER_BYTES

    @property
    def free(self) -> bool:
        return not self.lent_to and not self.held

    def data(self, nbytes: int) -> np.ndarray:
        return np.frombuffer(self.memory, np.uint8, nbytes, HEADER_BYTES)

    def close(self) -> None:
        os.close(self.ref.fd)
        with contextlib.suppress(BufferError):  # an array still views it: unmapped when gone
            self.memory.close()


def _header(segment_id: int) -> bytes:
    return MAGIC + segment_id.to_bytes(8, "little")


def _create(capacity: int) -> _Segment:
    fd = os.memfd_create(NAME, os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, HEADER_BYTES + capacity)
        memory = mmap.mmap(fd, HEADER_BYTES + capacity)
    except OSError:
        os.close(fd)
        raise
    segment_id = secrets.randbits(63)
    memory[: len(MAGIC) + 8] = _header(segment_id)
    address = np.frombuffer(memory, np.uint8, 0, HEADER_BYTES).ctypes.data
    return _Segment(SharedRef(fd, segment_id), memory, address)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Lease(np.ndarray):
    """The type of the first view of a segment's data.

    numpy points a view's ``base`` at the first array up the chain that owns its data, but
    stops at a change of type; with this type in between, every array made from the tensor
    keeps the first view (which carries the finalizer) alive, so the segment is given back
    exactly when nothing views it any more.
    """


def _tracked(first: np.ndarray, shape: tuple[int, ...], on_free: Callable[[], None]) -> np.ndarray:
    """``first`` reshaped, as a plain array; ``on_free`` runs once no array views ``first``."""
    weakref.finalize(first, on_free).atexit = False
    return np.asarray(first.view(_Lease).reshape(shape))


class SegmentPool:
    """A sender's segments. One is free again once every receiver it was lent to has
    released it and no array of this process views it.

    Used from one thread (the endpoint's event loop).
    """

    def __init__(self, max_bytes: int = POOL_BYTES) -> None:
        self._max_bytes = max_bytes
        self._segments: dict[int, _Segment] = {}
        self._by_address: dict[int, _Segment] = {}
        self._probe = _create(0)

    @property
    def probe(self) -> SharedRef:
        """A segment without data, for a peer to show it can open this process's segments."""
        return self._probe.ref

    @property
    def pooled_bytes(self) -> int:
        return sum(s.capacity for s in self._segments.values())

    def lend(self, array: np.ndarray, pid: int) -> SharedRef | None:
        """Lend process ``pid`` a segment holding ``array``: the one ``array`` already lies in
        (see :meth:`buffer`), else a free one it is copied into; ``None`` when the pool is
        exhausted (the caller sends the tensor in a frame instead)."""
        segment = self._segment_of(array)
        if segment is None:
            segment = self._free(array.nbytes) or self._new(array.nbytes)
            if segment is None:
                return None
            target = segment.data(array.nbytes)
            np.copyto(target, np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        segment.lent_to.add(pid)
        segment.used = time.monotonic()
        return segment.ref

    def buffer(
        self, shape: tuple[int, ...], dtype: np.dtype, unhold: Callable[[int], None]
    ) -> np.ndarray | None:
        """A writable array in a segment, for a tensor to be computed in place and then lent
        without a copy; ``unhold(segment id)`` must be called once no array views it (it is
        arranged to be, from whichever thread drops the last reference). ``None`` when the
        pool is exhausted."""
        count = math.prod(shape)
        nbytes = count * np.dtype(dtype).itemsize
        segment = self._free(nbytes) or self._new(nbytes)
        if segment is None:
            return None
        segment.held = True
        segment.used = time.monotonic()
        first = segment.data(nbytes).view(dtype)
        return _tracked(first, shape, functools.partial(unhold, segment.ref.segment))

    def unhold(self, segment_id: int) -> None:
        """No array of this process views the segment any more."""
        segment = self._segments.get(segment_id)
        if segment is not None:
            segment.held = False

    def release(self, segment_ids: Iterable[int], pid: int) -> None:
        """Process ``pid`` is done with these segments (ids it was not lent are ignored)."""
        for segment_id in segment_ids:
            segment = self._segments.get(segment_id)
            if segment is not None:
                segment.lent_to.discard(pid)

    def _segment_of(self, array: np.ndarray) -> _Segment | None:
        """The held segment whose data ``array`` is, exactly and contiguously."""
        if not array.flags.c_contiguous or not array.nbytes:
            return None
        segment = self._by_address.get(array.ctypes.data)
        if segment is None or not segment.held or array.nbytes > segment.capacity:
            return None
        return segment

    def _free(self, nbytes: int) -> _Segment | None:
        """The smallest free segment that fits, unless it is more than twice too big."""
        fits = [
            s
            for s in self._segments.values()
            if s.free and nbytes <= s.capacity <= 2 * nbytes + CHUNK_BYTES
        ]
        return min(fits, key=lambda s: s.capacity, default=None)

    def _new(self, nbytes: int) -> _Segment | None:
        capacity = -(-nbytes // CHUNK_BYTES) * CHUNK_BYTES
        if self.pooled_bytes + capacity > self._max_bytes:
            self._reclaim()
            for segment in sorted(self._idle(), key=lambda s: s.capacity):
                if self.pooled_bytes + capacity <= self._max_bytes:
                    break
                self._drop(segment)
            if self.pooled_bytes + capacity > self._max_bytes:
                return None
        segment = _create(capacity)
        self._segments[segment.ref.segment] = segment
        self._by_address[segment.address] = segment
        return segment

    def trim(self, idle_s: float) -> int:
        """Give back to the kernel the free segments not used for ``idle_s``: a burst of large
        tensors must not keep its segments (up to the pool's limit) for the process's life.
        Returns the bytes given back."""
        horizon = time.monotonic() - idle_s
        idle = [s for s in self._idle() if s.used < horizon]
        freed = sum(s.capacity for s in idle)
        for segment in idle:
            self._drop(segment)
        return freed

    def _idle(self) -> list[_Segment]:
        return [s for s in self._segments.values() if s.free]

    def _reclaim(self) -> None:
        """Take back segments lent to processes that have exited without releasing them."""
        for segment in self._segments.values():
            segment.lent_to = {pid for pid in segment.lent_to if _alive(pid)}

    def _drop(self, segment: _Segment) -> None:
        del self._segments[segment.ref.segment]
        del self._by_address[segment.address]
        segment.close()

    def close(self) -> None:
        for segment in [*self._segments.values(), self._probe]:
            segment.close()
        self._segments.clear()
        self._by_address.clear()


class SegmentReader:
    """A receiver's mappings of its peers' segments, kept so that a reused segment costs no
    new mapping (and no page faults)."""

    def __init__(self, max_mappings: int = MAPPINGS) -> None:
        self._max_mappings = max_mappings
        self._mappings: OrderedDict[tuple[int, int], mmap.mmap] = OrderedDict()

    def view(self, pid: int, ref: SharedRef, nbytes: int) -> memoryview:
        """The first ``nbytes`` of data in process ``pid``'s segment ``ref``.

        Raises :class:`OSError` or :class:`ValueError` when that is not a qsplit segment of
        that process, or is too small.
        """
        key = (pid, ref.segment)
        memory = self._mappings.get(key)
        if memory is None:
            memory = self._map(pid, ref)
            self._mappings[key] = memory
            if len(self._mappings) > self._max_mappings:
                self._mappings.popitem(last=False)
        else:
            self._mappings.move_to_end(key)
        if HEADER_BYTES + nbytes > len(memory):
            raise ValueError(f"segment holds {len(memory) - HEADER_BYTES} bytes, not {nbytes}")
        return memoryview(memory)[HEADER_BYTES : HEADER_BYTES + nbytes]

    def tensor(
        self,
        pid: int,
        ref: SharedRef,
        dtype: str,
        shape: tuple[int, ...],
        release: Callable[[], None],
    ) -> np.ndarray:
        """A read-only array over the tensor in process ``pid``'s segment ``ref``; ``release``
        is called (from whichever thread drops the last reference) once no array views it."""
        count = math.prod(shape)
        first = np.frombuffer(
            self.view(pid, ref, count * np.dtype(dtype).itemsize), dtype=dtype, count=count
        )
        return _tracked(first, shape, release)

    def can_read(self, pid: int, ref: SharedRef) -> bool:
        """Whether process ``pid``'s segment ``ref`` opens from here (the handshake's test)."""
        try:
            self.view(pid, ref, 0)
        except (OSError, ValueError):
            return False
        return True

    @staticmethod
    def _map(pid: int, ref: SharedRef) -> mmap.mmap:
        path = f"/proc/{pid}/fd/{ref.fd}"
        if not os.readlink(path).startswith(f"/memfd:{NAME}"):
            raise ValueError(f"{path} is not a qsplit segment")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            memory = mmap.mmap(fd, os.fstat(fd).st_size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        if memory[: len(MAGIC) + 8] != _header(ref.segment):
            memory.close()
            raise ValueError(f"{path} is not segment {ref.segment}")
        return memory

    def close(self) -> None:
        self._mappings.clear()
