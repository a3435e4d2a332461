"""The local istiod: signs identities, translates the manifests, serves them over ADS and
pushes every edit of the watched sources live.

Run by the supervisor as `python -m shopmesh.localmesh.controlplane --state DIR ...`. It reads
the placement the supervisor wrote (`DIR/placement.json`), issues every pod a certificate of
its own and every other identity a shared one (and keeps rotating them), keeps the peer
directory (`DIR/peer-metadata.json`: which pod is who, and holds which certificate), and prints
one line, `READY <address>`, once it serves. It lists in EDS only the pods the local kubelet
reports Ready (`DIR/pod-status.json`, shopmesh.localmesh.kubelet) and pushes each change. It
also serves the objects applied on top of the sources (`DIR/applied`,
shopmesh.localmesh.applied), and renews every certificate at once when asked to
(`DIR/ca/rotate`, shopmesh.localmesh.rotation).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc

from shopmesh.canary.objects import running
from shopmesh.localmesh.ads import AggregatedDiscoveryService
from shopmesh.localmesh.applied import AppliedObjects, ApplyError, overlay
from shopmesh.localmesh.ca import CertificateAuthority, IdentityIssuer, PodIdentity, spiffe_id
from shopmesh.localmesh.peers import PeerDirectoryWriter, workload_metadata
from shopmesh.localmesh.placement import Placement
from shopmesh.localmesh.rotation import serve_rotation_requests
from shopmesh.localmesh.state import MeshState
from shopmesh.localmesh.translate.translator import Snapshot, TranslationError, describe, translate
from shopmesh.manifests.model import MeshObjects
from shopmesh.manifests.render import RenderError, render

log = logging.getLogger("shopmesh.localmesh.controlplane")


def fingerprint(sources: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """What changed on disk: every file's path, size and mtime under the sources."""
    entries = []
    for source in sources:
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        for path in files:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # an editor's temporary file, gone already
            entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class SourceWatcher:
    """Polls the sources; on a change re-renders and re-translates, and publishes if it worked.

    Only the source that changed is rendered again (kustomize takes a few hundred
    milliseconds), so an edit is served well within a second. A source that fails to render
    or translate keeps the last good snapshot in force (what istiod does with an invalid
    object: it is rejected, the mesh keeps running). The applied objects (if any) lie on top
    of the sources; after each change of them, whether it was served is written down.
    """

    def __init__(
        self,
        sources: Sequence[Path],
        build: Callable[[MeshObjects], Snapshot],
        publish: Callable[[Snapshot], None],
        interval: float = 0.1,
        applied: AppliedObjects | None = None,
    ) -> None:
        self._sources = list(sources)
        self._build = build
        self._publish = publish
        self._interval = interval
        self._applied = applied
        self._seen = {source: fingerprint([source]) for source in self._sources}
        # Nothing seen applied yet: objects applied before the watcher began are pushed once more.
        self._seen_applied: list[list[object]] = []
        self._rendered: dict[Path, MeshObjects] = {}
        self.objects = MeshObjects([])  # those of the snapshot in force

    def prime(self, rendered: dict[Path, MeshObjects], objects: MeshObjects) -> None:
        """The sources as rendered at start, and the objects of the snapshot first served."""
        self._rendered.update(rendered)
        self.objects = objects

    def _current(self) -> MeshObjects:
        """The rendered sources with the applied objects on top."""
        objects = MeshObjects(r for source in self._sources for r in self._rendered[source])
        return overlay(objects, self._applied.load()) if self._applied else objects

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval)
            changed = [s for s in self._sources if fingerprint([s]) != self._seen[s]]
            applied_now = self._applied.fingerprint() if self._applied else []
            applied_changed = applied_now != self._seen_applied
            if not changed and not applied_changed:
                continue
            started = time.monotonic()
            # Settled for one short beat, so a file caught half-written is not applied.
            current = {source: fingerprint([source]) for source in changed}
            await asyncio.sleep(0.03)
            if any(fingerprint([source]) != current[source] for source in changed) or (
                self._applied and self._applied.fingerprint() != applied_now
            ):
                continue
            self._seen.update(current)
            self._seen_applied = applied_now
            try:
                for source in changed:
                    self._rendered[source] = await loop.run_in_executor(None, render, [source])
                objects = self._current()
                snapshot = self._build(objects)
            except (RenderError, TranslationError, ApplyError, ValueError, KeyError) as error:
                log.error("sources changed but were not applied (last good config stays): %s", error)
                if applied_changed and self._applied:
                    self._applied.write_status(applied_now, str(error))
                continue
            self.objects = objects
            self._publish(snapshot)
            if applied_changed and self._applied:
                self._applied.write_status(applied_now, None)
            what = [str(s) for s in changed] + (
                [str(self._applied.directory)] if applied_changed and self._applied else []
            )
            log.info(
                "pushed new config (%s changed, %.0f ms after detection): %s",
                ", ".join(what),
                (time.monotonic() - started) * 1000,
                {k: len(v) for k, v in describe(snapshot).items()},
            )


class PodReadiness:
    """Which pods the local kubelet reports Ready (its pod-status file), re-read when it changes:
    the endpoints controller's view of the pods. No file: every placed pod counts as Ready."""

    def __init__(self, status_file: Path, changed: Callable[[], None], interval: float = 0.1) -> None:
        self._file = status_file
        self._changed = changed
        self._interval = interval
        self._seen: tuple[int, int] | None = None
        self.ready: frozenset[str] | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Read the file if it changed; whether the set of Ready pods did."""
        try:
            stat = self._file.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
            if seen == self._seen:
                return False
            self._seen = seen  # a bad file is reported once, not at every poll
            reported = json.loads(self._file.read_text())["ready"]
        except FileNotFoundError:
            return False
        except (ValueError, KeyError, TypeError) as error:
            log.error("pod status %s unreadable (endpoints unchanged): %s", self._file, error)
            return False
        ready = frozenset(name for name, is_ready in reported.items() if is_ready)
        if ready == self.ready:
            return False
        self.ready = ready
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self.refresh():
                log.info("endpoints: Ready pods now %s", ", ".join(sorted(self.ready or ())) or "none")
                self._changed()


def identities_of(objects: MeshObjects, placement: Placement) -> list[str]:
    """Every pod's identity plus every ServiceAccount in the objects (e.g. `operator`, whose
    certificate lets a person or a test call with that identity)."""
    accounts = {spiffe_id(sa.namespace, sa.name) for sa in objects.of_kind("ServiceAccount")}
    return sorted(accounts | set(placement.identities()))


async def serve(arguments: argparse.Namespace) -> None:
    state = MeshState(Path(arguments.state))
    placement = Placement.load(state.placement_file)
    sources = [Path(source) for source in arguments.source]
    rendered = {source: render([source]) for source in sources}
    rendered_objects = MeshObjects(r for source in sources for r in rendered[source])
    objects = running(rendered_objects)
    readiness = PodReadiness(state.pod_status_file, changed=lambda: republish())
    applied = AppliedObjects(state.applied_directory)
    served = rendered_objects  # before Flagger's running view: what the watcher re-translates
    try:  # what was applied before a restart is served again, if it still translates
        with_applied = overlay(rendered_objects, applied.load())
        snapshot = translate(running(with_applied), placement, readiness.ready)
        served = with_applied
        applied.write_status(applied.fingerprint(), None)
    except (TranslationError, ApplyError, ValueError, KeyError) as error:
        log.error("the applied objects were not served (the sources' are): %s", error)
        applied.write_status(applied.fingerprint(), str(error))
        snapshot = translate(objects, placement, readiness.ready)

    # Who each pod is, and which certificate each pod holds: the peer directory the proxies'
    # Istio metrics read (shopmesh.localmesh.peers), written before any certificate exists.
    peers = PeerDirectoryWriter(state.peer_metadata_file, workload_metadata(objects, placement))
    peers.write()
    issuer = IdentityIssuer(
        CertificateAuthority.load_or_create(state.ca_directory),
        state.identities_directory,
        datetime.timedelta(seconds=arguments.certificate_lifetime),
        record=peers.record,
    )
    issuer.ensure(sorted(set(identities_of(objects, placement)) | set(arguments.identity)))
    issuer.ensure_pods(
        PodIdentity(pod.namespace, pod.name, pod.spiffe_id, pod.node_id) for pod in placement.pods()
    )
    issuer.start_rotation()

    discovery = AggregatedDiscoveryService(snapshot)
    source_watcher = SourceWatcher(
        sources,
        lambda objs: translate(running(objs), placement, readiness.ready),
        discovery.publish,
        applied=applied,
    )
    source_watcher.prime(rendered, served)

    def republish() -> None:
        try:
            discovery.publish(translate(running(source_watcher.objects), placement, readiness.ready))
        except TranslationError as error:  # the objects translated before; say so if not now
            log.error("endpoints changed but were not applied: %s", error)

    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(discovery, server)
    port = server.add_insecure_port(arguments.listen)
    if port == 0:
        raise SystemExit(f"control plane: cannot listen on {arguments.listen}")
    await server.start()
    host = arguments.listen.rsplit(":", 1)[0]
    print(f"READY {host}:{port}", flush=True)
    log.info("serving xDS on %s:%d: %s", host, port, describe(discovery.snapshot))

    watchers = [
        asyncio.create_task(source_watcher.run()),
        asyncio.create_task(readiness.run()),
        asyncio.create_task(serve_rotation_requests(state.rotation_request_file, issuer.rotate_all)),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for watcher in watchers:
        watcher.cancel()
    issuer.stop()
    await server.stop(grace=0.5)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shopmesh.localmesh.controlplane")
    parser.add_argument("--state", required=True, help="the mesh's state directory")
    parser.add_argument("--listen", default="127.0.0.1:15010", help="ADS address (istiod's 15010)")
    parser.add_argument("--source", action="append", required=True, help="kustomization dir or YAML file")
    parser.add_argument("--certificate-lifetime", type=float, default=3600.0, help="seconds")
    parser.add_argument("--identity", action="append", default=[], help="another SPIFFE id to certify")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s controlplane %(levelname)s %(message)s")
    asyncio.run(serve(arguments))


if __name__ == "__main__":
    main()
