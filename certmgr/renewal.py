"""Renew many certificates at once: one worker per MTA, its slots in turn.

Each MTA's slots are renewed sequentially (a dual MTA gets both certificates
before it is deployed); different MTAs run concurrently.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from certmgr.config import MtaConfig
from certmgr.deployment import deploy_mta, needs_deploy
from certmgr.lifecycle import Outcome, renew_slot
from certmgr.runtime import Runtime
from certmgr.store import ManagedCert, utcnow

Progress = Callable[[Outcome], None]


def renew_many(
    rt: Runtime,
    hosts: list[str],
    *,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> list[Outcome]:
    by_mta: dict[str, tuple[MtaConfig, list[ManagedCert]]] = {}
    for mta, slot in rt.select(hosts):
        by_mta.setdefault(mta.hostname, (mta, []))[1].append(slot)
    # naming a host limits the run to it and renews it if due, trying now despite a back-off
    # (as certbot's `renew --cert-name`); only --force renews what is not due
    retry_now = bool(hosts)

    def one_mta(mta: MtaConfig, slots: list[ManagedCert]) -> list[Outcome]:
        out = []
        for slot in slots:
            outcome = renew_slot(rt, mta, slot, force=force, retry_now=retry_now, dry_run=dry_run)
            if progress:
                progress(outcome)
            out.append(outcome)
        if not mta.deploy:
            return out
        issued = any(o.action == "issued" for o in out)
        if dry_run:
            if issued or any(o.action == "would-renew" for o in out) or needs_deploy(rt, mta, utcnow()):
                out.append(Outcome(mta.hostname, "all", "would-deploy", ", ".join(mta.deploy)))
        elif issued or needs_deploy(rt, mta, utcnow()):
            for report in deploy_mta(rt, mta):
                action = "deployed" if report.ok else ("rolled-back" if report.rolled_back else "deploy-failed")
                out.append(Outcome(mta.hostname, "all", action, f"{report.target}: {report.message}"))
        return out

    results: list[Outcome] = []
    workers = max(1, min(rt.config.settings.concurrency, len(by_mta)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="renew") as pool:
        futures = [pool.submit(one_mta, m, s) for m, s in by_mta.values()]
        for f in as_completed(futures):
            results.extend(f.result())
    order = {h: i for i, h in enumerate(by_mta)}
    results.sort(key=lambda o: (order[o.hostname], o.key_alg == "all", o.key_alg))
    return results
