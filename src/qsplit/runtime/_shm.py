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

import math
import mmap
import os
import secrets
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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
"""Most memory one process's segments may hold; beyond it tensors travel in frames."""
MAPPINGS = 64
"""Peer segments a receiver keeps mapped (the least recently used is unmapped first)."""
AVAILABLE = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")
"""Linux only: memfd and /proc are what make a segment reachable by another process."""


@dataclass
class _Segment:
    ref: SharedRef
    memory: mmap.mmap
    lent_to: int | None = None
    """Pid of the receiver that has not yet released it."""

    @property
    def capacity(self) -> int:
        return len(self.memory) - HEADER_BYTES

    def close(self) -> None:
        self.memory.close()
        os.close(self.ref.fd)


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
    return _Segment(SharedRef(fd, segment_id), memory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SegmentPool:
    """A sender's segments; each is lent to one receiver at a time.

    Used from one thread (the endpoint's event loop).
    """

    def __init__(self, max_bytes: int = POOL_BYTES) -> None:
        self._max_bytes = max_bytes
        self._segments: dict[int, _Segment] = {}
        self._probe = _create(0)

    @property
    def probe(self) -> SharedRef:
        """A segment without data, for a peer to show it can open this process's segments."""
        return self._probe.ref

    @property
    def held_bytes(self) -> int:
        return sum(s.capacity for s in self._segments.values())

    def lend(self, array: np.ndarray, pid: int) -> SharedRef | None:
        """Copy ``array`` into a free segment now lent to process ``pid``; ``None`` when the
        pool is exhausted (the caller sends the tensor in a frame instead)."""
        nbytes = array.nbytes
        segment = self._free(nbytes) or self._new(nbytes)
        if segment is None:
            return None
        target = np.frombuffer(segment.memory, np.uint8, nbytes, HEADER_BYTES)
        np.copyto(target, np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        segment.lent_to = pid
        return segment.ref

    def release(self, segment_ids: Iterable[int], pid: int) -> None:
        """Process ``pid`` is done with these segments (ids it was not lent are ignored)."""
        for segment_id in segment_ids:
            segment = self._segments.get(segment_id)
            if segment is not None and segment.lent_to == pid:
                segment.lent_to = None

    def _free(self, nbytes: int) -> _Segment | None:
        """The smallest free segment that fits, unless it is more than twice too big."""
        fits = [
            s
            for s in self._segments.values()
            if s.lent_to is None and nbytes <= s.capacity <= 2 * nbytes + CHUNK_BYTES
        ]
        return min(fits, key=lambda s: s.capacity, default=None)

    def _new(self, nbytes: int) -> _Segment | None:
        capacity = -(-nbytes // CHUNK_BYTES) * CHUNK_BYTES
        if self.held_bytes + capacity > self._max_bytes:
            self._reclaim()
            for segment in sorted(self._idle(), key=lambda s: s.capacity):
                if self.held_bytes + capacity <= self._max_bytes:
                    break
                self._drop(segment)
            if self.held_bytes + capacity > self._max_bytes:
                return None
        segment = _create(capacity)
        self._segments[segment.ref.segment] = segment
        return segment

    def _idle(self) -> list[_Segment]:
        return [s for s in self._segments.values() if s.lent_to is None]

    def _reclaim(self) -> None:
        """Take back segments lent to processes that have exited without releasing them."""
        for segment in self._segments.values():
            if segment.lent_to is not None and not _alive(segment.lent_to):
                segment.lent_to = None

    def _drop(self, segment: _Segment) -> None:
        del self._segments[segment.ref.segment]
        segment.close()

    def close(self) -> None:
        for segment in [*self._segments.values(), self._probe]:
            segment.close()
        self._segments.clear()


class _Lease(np.ndarray):
    """The type of the first view of a peer's segment.

    numpy points a view's ``base`` at the first array up the chain that owns its data, but
    stops at a change of type; with this type in between, every array made from a shared
    tensor keeps the view that carries the release alive, so the segment goes back exactly
    when nothing reads it any more.
    """


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
        weakref.finalize(first, release).atexit = False
        return np.asarray(first.view(_Lease).reshape(shape))

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
