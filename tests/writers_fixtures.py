"""Shared fixtures for the protocol tests: embeddings with known identity structure and a small IJB-C release.

Test modules import these from here (never from one another).
"""

from __future__ import annotations

import numpy as np
from writers_ijb import write_1n_csv, write_ijb_release


def noisy_identity_embeddings(identities, dim=8, noise=1.0, seed=0):
    """One random centre per identity plus noise: separable on average, with errors to resample."""
    rng = np.random.default_rng(seed)
    names = sorted(set(identities))
    centres = rng.normal(size=(len(names), dim))
    return centres[[names.index(i) for i in identities]] + noise * rng.normal(size=(len(identities), dim))

#: Subjects of :func:`ijb_fixture`.
N_SUBJECTS = 10


def ijb_fixture(root, with_csvs: bool):
    """10 subjects x 3 templates (1-3 images each, own media); all template pairs; G1/G2 = first template of subjects
    0-4 / 5-9, probes = the rest: 10 non-mated searches per gallery (1:N CSVs written when ``with_csvs``)."""
    rng = np.random.default_rng(0)
    templates, medias, subj = [], [], {}
    for s in range(N_SUBJECTS):
        for k in range(3):
            t = 100 * s + k + 1
            subj[t] = s
            for _ in range(int(rng.integers(1, 4))):
                templates.append(t)
                medias.append(len(medias) + 1)
    ts = sorted(subj)
    pairs = [(a, b, int(subj[a] == subj[b])) for i, a in enumerate(ts) for b in ts[i + 1:]]
    fx = write_ijb_release(root, "ijbc", templates, medias, pairs)
    if with_csvs:
        rows = {"G1": [], "G2": [], "probe": []}
        for i, t in enumerate(fx.templates):
            dest = ("G1" if subj[t] < 5 else "G2") if (t - 1) % 100 == 0 else "probe"
            rows[dest].append((t, subj[t], f"img/{i}.jpg"))
        for name, key in (("gallery_G1", "G1"), ("gallery_G2", "G2"), ("probe_mixed", "probe")):
            write_1n_csv(root / "meta" / f"ijbc_1N_{name}.csv", rows[key])
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(N_SUBJECTS, 8))
    s = np.array([subj[t] for t in fx.templates])
    emb = (centres[s] + 1.3 * rng.normal(size=(len(s), 8))).astype(np.float32)
    return fx, subj, emb
