"""CPU per certificate chain judged: the validator before issue 17 and now, side by side.

Theory of operation
-------------------
``survey.certs`` used to link certificates by issuer name and signature only;
it now transcribes OpenSSL's X509_verify_cert (docs/certificates.md). This
benchmark judges the same distinct chains with both, in one process, one
after the other, each with a fresh trust store holding Mozilla's roots and
the chains' anchors (as a scan has it): the chains are the named kinds of
survey/testbed/chains.py, each built for many host names, so every leaf is
new while intermediates and roots recur (as on the Internet). The "before"
validator is ``survey/certs.py`` at the last commit without ``build_path``,
loaded from git into its own module.

Reported: CPU (process time) per chain for each, their ratio, and how many
of the defect kinds each judged trusted (the bug the change fixes). A chain
is judged once per distinct chain and trust store in a scan, so the CPU per
domain grows by about the per-chain difference (one distinct chain per
domain at most). Target: the new validator costs at most 1 ms of CPU per
chain (a scan's whole budget is 2 ms per domain, benchmarks/scale.py).

    python benchmarks/certs.py [--chains 3000] [--before REV]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as c  # noqa: E402
from survey import certs  # noqa: E402
from survey.testbed import chains  # noqa: E402


def before_revision() -> str:
    """The newest commit whose survey/certs.py has no build_path (the old validator)."""
    revs = subprocess.run(["git", "-C", str(c.REPO), "log", "--format=%H", "--",
                           "survey/certs.py"], capture_output=True, text=True,
                          check=True).stdout.split()
    for rev in revs:
        source = subprocess.run(["git", "-C", str(c.REPO), "show", f"{rev}:survey/certs.py"],
                                capture_output=True, text=True, check=True).stdout
        if "def build_path" not in source:
            return rev
    raise SystemExit("no revision of survey/certs.py without build_path")


def load_before(rev: str):
    source = subprocess.run(["git", "-C", str(c.REPO), "show", f"{rev}:survey/certs.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="survey-certs-before-")) / "certs_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("certs_before", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["certs_before"] = module
    spec.loader.exec_module(module)
    return module


def corpus(n: int, now: dt.datetime) -> tuple[list[list[bytes]], list, list[chains.Kind]]:
    """n chains (kinds x hosts), every anchor they use, and the kind of each chain."""
    out, anchors, which = [], {}, []
    i = 0
    while len(out) < n:
        for kind in chains.kinds(f"mx{i}.d{i}.bench.test"):
            built = chains.build(kind.spec, now)
            out.append(built.sent_der())
            which.append(kind)
            for anchor in built.anchors:
                anchors[anchor.public_bytes(certs._DER)] = anchor
            if len(out) >= n:
                break
        i += 1
    return out, list(anchors.values()), which


def judge_all(module, chain_ders, anchors, now) -> tuple[float, list]:
    store = module.TrustStore.load([], mozilla=True)
    for anchor in anchors:
        store.anchors.append(anchor)
        store._index(anchor)
    started = time.process_time()
    verdicts = [module.judge_chain(der, now, store) for der in chain_ders]
    return time.process_time() - started, verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=3000)
    parser.add_argument("--before", default=None, help="git revision of the old validator")
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rev = args.before or before_revision()
    old = load_before(rev)
    c.log(f"building {args.chains} chains")
    chain_ders, anchors, which = corpus(args.chains, now)
    c.log(f"judging with the validator of {rev[:10]} and the current one")
    before_s, before = judge_all(old, chain_ders, anchors, now)
    after_s, after = judge_all(certs, chain_ders, anchors, now)
    n = len(chain_ders)
    defect_kinds = {k.name for k in which if not k.trusted}
    trusted_before = {k.name for k, v in zip(which, before) if v and v.trusted and not k.trusted}
    trusted_after = {k.name for k, v in zip(which, after) if v and v.trusted and not k.trusted}
    per_before, per_after = before_s / n * 1e3, after_s / n * 1e3
    c.emit("certs", settings={"chains": n, "kinds": len({k.name for k in which}),
                              "before_revision": rev, "trust_store": "certifi + chain anchors"},
           cpu_ms_per_chain_before=round(per_before, 4),
           cpu_ms_per_chain_after=round(per_after, 4),
           after_over_before=round(per_after / per_before, 3) if per_before else None,
           defect_kinds=len(defect_kinds),
           defect_kinds_judged_trusted_before=sorted(trusted_before),
           defect_kinds_judged_trusted_after=sorted(trusted_after),
           targets={"cpu_ms_per_chain_after": c.target(per_after, "<=", 1.0),
                    "defect_kinds_trusted_after": c.target(len(trusted_after), "<=", 0)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
