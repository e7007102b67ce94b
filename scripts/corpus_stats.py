"""Measure what the synthetic sign corpus claims (harness/data/synth, whose package docstring lists
the claims): the inventory's minimal pairs (and whether partners fill the same grammatical slot,
so that the sentence around a sign cannot tell them apart), sentence and sign lengths, how the
gloss order and the text differ, the noise the preprocessing of appendix B.1 has to remove, and whether the subtle
channels matter: a 1-nearest-neighbour sign classifier over isolated sign segments (cut by the
gloss boundaries, normalized by the shoulders as in B.1, resampled to a fixed length) is evaluated
on the test split's signs with all points, with the hands blanked, the face blanked, and both.
If minimal pairs are real, blanking hands and face makes them indistinguishable and accuracy drops.
Last, how much each part moves as eq. 1 sees it (harness/part_motion.py: body, centroid-normalised
face and wrist-relative hands variances over windows of the pretraining length), for the synthetic
corpus next to each real sample in ../shared/data (left out, with a line saying so, when absent).

    python scripts/corpus_stats.py                   # the "default" profile's corpus, markdown
    python scripts/corpus_stats.py --profile debug --json
    python scripts/corpus_stats.py --sentences 600/80/80   # the default corpus's generator, larger splits
    python scripts/corpus_stats.py --real-data DIR      # real samples elsewhere than ../shared/data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from harness.config import DataConfig, load_profile  # noqa: E402
from harness.part_motion import part_motion, preprocessed, ratio_range, real_motions  # noqa: E402
from harness.data.preprocess import keep_frames, normalize  # noqa: E402
from harness.data.record import Corpus, SignSequence  # noqa: E402
from harness.data.synth import PRIMARY, generate_corpus, gloss_inventory, minimal_pairs, slot  # noqa: E402
from models.layout import CANONICAL  # noqa: E402

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data from the project root
SEGMENT_FRAMES = 12  # every sign segment is resampled to this many frames
NOISE_THRESHOLD = DataConfig().noise_threshold  # the harness's default, in shoulder lengths
POINT_SETS = {  # features of the classifier: which canonical points it may look at
    "all points": tuple(range(CANONICAL.num_points)),
    "hands blanked": CANONICAL.parts["body"] + CANONICAL.parts["face"],
    "face blanked": CANONICAL.parts["body"] + CANONICAL.parts["left_hand"] + CANONICAL.parts["right_hand"],
    "hands+face blanked": CANONICAL.parts["body"],
}


def clean(seq: SignSequence, threshold: float = NOISE_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints (T, V, C) in shoulder units, mask (T, V) with dropped frames masked, keep (T,))."""
    kp = normalize(seq.keypoints, seq.mask, seq.name)  # (T, V, C)
    keep = keep_frames(kp, seq.mask, threshold)  # (T,)
    return kp, seq.mask & keep[:, None], keep


def sign_segments(sequences: list[SignSequence], length: int = SEGMENT_FRAMES):
    """Isolated signs: (X (N, length, V, C), M (N, length, V), glosses (N,), signers (N,))."""
    xs, ms, labels, signers = [], [], [], []
    for seq in sequences:
        kp, mask, _ = clean(seq)
        for gloss, (start, end) in zip(seq.gloss.split(), seq.boundaries):
            idx = np.round(np.linspace(start, end - 1, length)).astype(int)  # nearest-frame resampling
            xs.append(kp[idx])
            ms.append(mask[idx])
            labels.append(gloss)
            signers.append(seq.signer)
    return np.stack(xs), np.stack(ms), np.array(labels), np.array(signers)


def masked_sq_distances(a: np.ndarray, ma: np.ndarray, b: np.ndarray, mb: np.ndarray) -> np.ndarray:
    """Mean squared difference over the features present in both: (Na, D), (Nb, D) -> (Na, Nb)."""
    a, b = np.where(ma, a, 0.0), np.where(mb, b, 0.0)
    fa, fb = ma.astype(np.float64), mb.astype(np.float64)
    total = (a * a) @ fb.T + fa @ (b * b).T - 2.0 * a @ b.T  # sum over shared features
    return total / np.maximum(fa @ fb.T, 1.0)


def nn_predict(train, test, points) -> np.ndarray:
    """1-NN labels of the test segments, looking only at `points` (canonical indices)."""
    (xa, ma, la), (xb, mb) = train, test
    pts = np.asarray(points)

    def features(x, m):  # (N, L, V, C) -> (N, L * P * C)
        f = x[:, :, pts].reshape(len(x), -1).astype(np.float64)
        fm = np.repeat(m[:, :, pts, None], x.shape[-1], axis=-1).reshape(len(x), -1)
        return f, fm

    fa, fma = features(xa, ma)
    fb, fmb = features(xb, mb)
    return la[np.argmin(masked_sq_distances(fb, fmb, fa, fma), axis=1)]


def blanking_accuracies(corpus: Corpus, paired: set[str] | None = None) -> dict:
    """1-NN accuracy on test signs (glosses seen in train) per POINT_SETS; also split into signs
    whose gloss has a minimal-pair partner (`paired`) and those that have none."""
    xa, ma, la, _ = sign_segments(corpus["train"])
    xb, mb, lb, _ = sign_segments(corpus["test"])
    seen = np.isin(lb, la)
    xb, mb, lb = xb[seen], mb[seen], lb[seen]
    has_partner = np.isin(lb, sorted(paired or ()))
    out = {"train_signs": int(len(la)), "test_signs": int(len(lb)), "accuracy": {}}
    for name, points in POINT_SETS.items():
        correct = nn_predict((xa, ma, la), (xb, mb), points) == lb
        out["accuracy"][name] = {
            "all": float(correct.mean()),
            "with partner": float(correct[has_partner].mean()) if has_partner.any() else None,
            "without partner": float(correct[~has_partner].mean()) if (~has_partner).any() else None,
        }
    return out


def order_differs(seq: SignSequence) -> bool:
    """True when the text words of the glosses are not in gloss order."""
    words = [w for w in seq.meta["alignment"] if w >= 0]
    return any(b <= a for a, b in zip(words, words[1:]))


def corpus_stats(params: dict, classifier: bool = True, motion_profile: str | None = None,
                 real_root: Path = REAL_DATA) -> dict:
    """All measurements for generate_corpus(**params)."""
    t0 = time.perf_counter()
    corpus = generate_corpus(**params)
    seconds = time.perf_counter() - t0
    inventory = gloss_inventory(params["seed"], params["glosses"])
    pairs = minimal_pairs(inventory)
    paired = {g for kind in pairs.values() for pair in kind for g in pair}
    # Partners that fill the same grammatical slot: the sentence around the sign cannot tell them apart.
    same_slot = [p for kind in pairs.values() for p in kind if slot(p[0]) == slot(p[1])]
    slot_paired = {g for p in same_slot for g in p}
    held_tokens = [g for split in ("dev", "test") for s in corpus[split] for g in s.gloss.split()]
    seqs = [s for split in corpus.values() for s in split]
    train = corpus["train"]
    frames = np.array([s.num_frames for s in seqs])
    sign_frames = np.array([e - s for q in seqs for s, e in q.boundaries])
    gaps = np.array([b[0] - a[1] for q in seqs for a, b in zip(q.boundaries, q.boundaries[1:])])
    signs_per = np.array([len(s.boundaries) for s in seqs])
    text_len = np.array([len(s.text.split()) - 1 for s in seqs])  # without the final "."
    aligned = sum(sum(w >= 0 for w in s.meta["alignment"]) for s in seqs)
    vocab = {w for s in seqs for w in s.text.split()}
    train_set = {s.gloss for s in train}
    train_glosses = {g for s in train for g in s.gloss.split()}
    held = [s for split in ("dev", "test") for s in corpus[split]]
    noisy = caught = false_drops = masked = primary = 0
    total_frames = 0
    for s in seqs:
        _, _, keep = clean(s)
        flags = np.zeros(s.num_frames, bool)
        flags[s.meta["noisy_frames"]] = True
        noisy += int(flags.sum())
        caught += int((flags & ~keep).sum())
        false_drops += int((~flags & ~keep).sum())
        masked += int((~s.mask[:, PRIMARY]).sum())
        primary += s.mask[:, PRIMARY].size
        total_frames += s.num_frames
    stats = {
        "params": params,
        "generation_seconds": round(seconds, 3),
        "sentences": {split: len(v) for split, v in corpus.items()},
        "signers": len({s.signer for s in seqs}),
        "glosses": len(inventory),
        "glosses_with_minimal_partner": len(paired),
        "distinct_trajectories": len({g.trajectory for g in inventory}),
        "minimal_pairs": {k: len(v) for k, v in pairs.items()},
        "minimal_pair_examples": {k: [" / ".join(p) for p in v[:3]] for k, v in pairs.items()},
        "minimal_pairs_same_slot": len(same_slot),
        "devtest_sign_tokens_with_partner": float(np.mean([g in paired for g in held_tokens])) if held_tokens else 0.0,
        "devtest_sign_tokens_with_same_slot_partner": (float(np.mean([g in slot_paired for g in held_tokens]))
                                                       if held_tokens else 0.0),
        "frames_per_sentence": {"mean": float(frames.mean()), "min": int(frames.min()), "max": int(frames.max())},
        "frames_per_sign": {"mean": float(sign_frames.mean()), "min": int(sign_frames.min()),
                            "max": int(sign_frames.max())},
        "transition_frames_mean": float(gaps.mean()) if len(gaps) else 0.0,
        "signs_per_sentence": {"mean": float(signs_per.mean()), "min": int(signs_per.min()),
                               "max": int(signs_per.max())},
        "text_tokens_per_sentence": float(text_len.mean()),
        "text_vocabulary": len(vocab),
        "text_tokens_without_sign": 1.0 - aligned / float(text_len.sum()),
        "gloss_order_differs": float(np.mean([order_differs(s) for s in seqs])),
        "distinct_train_gloss_sequences": len(train_set) / max(len(train), 1),
        "devtest_seen_in_train": float(np.mean([s.gloss in train_set for s in held])) if held else 0.0,
        "devtest_unseen_glosses": int(sum(g not in train_glosses for s in held for g in s.gloss.split())),
        "glosses_in_train": len(train_glosses),
        "noise": {
            "noisy_frames": noisy / total_frames,
            "noisy_frames_dropped_by_B1": caught / max(noisy, 1),
            "clean_frames_dropped_by_B1": false_drops / max(total_frames - noisy, 1),
            "missing_primary_points": masked / primary,
        },
        "examples": [{"gloss": s.gloss, "text": s.text} for s in train[:5]],
    }
    if classifier and corpus["test"]:
        stats["nearest_neighbour"] = blanking_accuracies(corpus, paired)
    if motion_profile is not None:
        stats["motion"] = motion_stats(corpus, motion_profile, real_root)
    return stats


def motion_stats(corpus, profile: str, real_root: Path) -> dict:
    """Eq. 1's group variances of the synthetic corpus and of each real sample under real_root,
    with the real samples' ratio range."""
    cfg = load_profile(profile)
    synth = part_motion("synthetic corpus", preprocessed(corpus, cfg), cfg.pretrain.window)
    real = real_motions(real_root, cfg) if real_root.is_dir() else []
    as_dict = lambda m: {**dataclasses.asdict(m), "body_to_hands": m.body_to_hands,  # noqa: E731
                         "face_to_body": m.face_to_body}
    return {"window": cfg.pretrain.window, "real_root": str(real_root), "synthetic": as_dict(synth),
            "real": [as_dict(m) for m in real], "real_range": ratio_range(real)}


def motion_markdown(mo: dict) -> list[str]:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = ["", f"Part motion as eq. 1 sees it: variance per group over {mo['window']}-frame windows (shoulder "
             "units squared; face relative to its centroid, hands to their wrists), after B.1:", "",
             "| corpus | sequences / windows | body | face | hands | body : hands | face : body |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for m in [mo["synthetic"], *mo["real"]]:
        lines.append(f"| {m['name']} | {m['sequences']} / {m['windows']} | {m['body']:.2e} | {fmt(m['face'], '.2e')} | "
                     f"{fmt(m['hands'], '.2e')} | {fmt(m['body_to_hands'], '.2f')} | {fmt(m['face_to_body'], '.4f')} |")
    if not mo["real"]:
        lines += ["", f"No real samples at {mo['real_root']}: nothing to compare with (pass --real-data DIR)."]
    for ratio, (lo, hi) in mo["real_range"].items():
        value = mo["synthetic"][ratio]
        inside = "inside" if value is not None and lo <= value <= hi else "OUTSIDE"
        lines.append(f"- {ratio.replace('_to_', ' : ')}: synthetic {fmt(value, '.4g')}, "
                     f"real samples {lo:.4g} to {hi:.4g} ({inside} their range)")
    return lines


def markdown(st: dict) -> str:
    p, n = st["params"], st["noise"]
    mp, ex = st["minimal_pairs"], st["minimal_pair_examples"]
    lines = [
        f"## Synthetic corpus (seed {p['seed']}): {st['sentences']['train']}/{st['sentences']['dev']}/"
        f"{st['sentences']['test']} sentences, {st['signers']} signers, generated in {st['generation_seconds']:.2f} s",
        "",
        "| inventory | |",
        "|---|---|",
        f"| glosses | {st['glosses']} ({st['distinct_trajectories']} distinct trajectories) |",
        f"| glosses with a minimal-pair partner | {st['glosses_with_minimal_partner']} "
        f"({st['glosses_with_minimal_partner'] / st['glosses']:.0%}) |",
        f"| pairs differing only in handshape | {mp['hand']} (e.g. {', '.join(ex['hand'][:2])}) |",
        f"| pairs differing only in face | {mp['face']} (e.g. {', '.join(ex['face'][:2])}) |",
        f"| pairs differing in handshape + face | {mp['hand+face']} |",
        f"| pairs whose members fill the same grammatical slot | {st['minimal_pairs_same_slot']} of "
        f"{sum(mp.values())} |",
        f"| dev/test sign tokens whose gloss has a partner / a same-slot partner | "
        f"{st['devtest_sign_tokens_with_partner']:.0%} / {st['devtest_sign_tokens_with_same_slot_partner']:.0%} |",
        "",
        "| sentences | |",
        "|---|---|",
        f"| frames per sentence | {st['frames_per_sentence']['mean']:.1f} "
        f"({st['frames_per_sentence']['min']}-{st['frames_per_sentence']['max']}) |",
        f"| frames per sign | {st['frames_per_sign']['mean']:.1f} "
        f"({st['frames_per_sign']['min']}-{st['frames_per_sign']['max']}); "
        f"transitions between signs {st['transition_frames_mean']:.1f} |",
        f"| signs per sentence | {st['signs_per_sentence']['mean']:.2f} "
        f"({st['signs_per_sentence']['min']}-{st['signs_per_sentence']['max']}) |",
        f"| text tokens per sentence / vocabulary | {st['text_tokens_per_sentence']:.2f} / {st['text_vocabulary']} |",
        f"| text tokens with no sign (function words) | {st['text_tokens_without_sign']:.0%} |",
        f"| sentences whose gloss order differs from the text order | {st['gloss_order_differs']:.0%} |",
        f"| dev/test sentences whose gloss sequence is in train | {st['devtest_seen_in_train']:.0%} "
        f"(unseen gloss tokens: {st['devtest_unseen_glosses']}; glosses in train: {st['glosses_in_train']}) |",
        f"| noisy frames / dropped by B.1 (threshold {NOISE_THRESHOLD}) / clean frames dropped | "
        f"{n['noisy_frames']:.2%} / {n['noisy_frames_dropped_by_B1']:.0%} / {n['clean_frames_dropped_by_B1']:.2%} |",
        f"| missing points (of the 69 observed) | {n['missing_primary_points']:.2%} |",
    ]
    if "nearest_neighbour" in st:
        nn = st["nearest_neighbour"]
        lines += [
            "",
            f"1-NN sign classifier: {nn['train_signs']} train signs, {nn['test_signs']} test signs, "
            f"{SEGMENT_FRAMES} frames each, shoulder-normalized, B.1 noisy frames masked.",
            "",
            "| features | accuracy | glosses with a partner | glosses without |",
            "|---|---|---|---|",
        ]
        fmt = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
        for name, acc in nn["accuracy"].items():
            lines.append(f"| {name} | {fmt(acc['all'])} | {fmt(acc['with partner'])} | {fmt(acc['without partner'])} |")
    if "motion" in st:
        lines += motion_markdown(st["motion"])
    lines += ["", "Examples:"] + [f"- `{e['gloss']}` -> \"{e['text']}\"" for e in st["examples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", help="profile whose data.synth settings to use")
    parser.add_argument("--seed", type=int, default=None, help="override data.synth.seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of markdown")
    parser.add_argument("--no-classifier", action="store_true", help="skip the 1-NN blanking measurement")
    parser.add_argument("--sentences", metavar="TRAIN/DEV/TEST", help="other split sizes, e.g. 600/80/80")
    parser.add_argument("--real-data", type=Path, default=REAL_DATA, metavar="DIR",
                        help=f"the real samples to compare part motion with (default {REAL_DATA})")
    args = parser.parse_args(argv)
    params = dataclasses.asdict(load_profile(args.profile).data.synth)
    if args.seed is not None:
        params["seed"] = args.seed
    if args.sentences:
        try:
            params["train"], params["dev"], params["test"] = (int(n) for n in args.sentences.split("/"))
        except ValueError:
            parser.error(f"--sentences expects TRAIN/DEV/TEST, got {args.sentences!r}")
    st = corpus_stats(params, classifier=not args.no_classifier, motion_profile=args.profile, real_root=args.real_data)
    print(json.dumps(st, indent=2) if args.json else markdown(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
