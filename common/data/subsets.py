"""Limited-data subsets of the MTAT train split (the study's x-axis), and draws of them.

`N` tracks per genre, as the study takes them: from the train clips whose top-50 tags
contain exactly one of the ten genres, the first N of each genre in the train split's
order (ascending clip id). A clip is a 29-second segment of a song, so a small subset holds
neighbouring segments of few songs: that is the study's data, reproduced as it is.
`full` is the whole train split. Every list is a prefix of one fixed order per genre,
so the subsets are nested: every clip of a smaller subset is in every larger one.

Draws are an axis the study lacks: with 10 clips, which 10 clips matters. Draw 0 is the
study's subset; draw k >= 1 takes the first N of each genre in an order fixed by a hash of
(k, clip id): a genre-balanced random draw of the same size, nested within the draw, that
no random generator's version can change.

    python -m common.data.subsets                     # the table for the real MTAT (no audio needed)
    python -m common.data.subsets --list 1            # the clip ids of subset 1, one per line
    python -m common.data.subsets --list 5 --draw 2   # ... of another draw of subset 5
    python -m common.data.subsets --demo              # the same for the demo data (rendered on first use)
"""
import hashlib
import re

from ..cli import ArgumentParser, UserError, add_data_options, non_negative_int, run

GENRES = ("classical", "techno", "electronic", "rock", "indian", "opera", "pop", "new age",
          "country", "choral")
TRACKS_PER_GENRE = (1, 2, 5, 10, 20, 50, 100)
SUBSETS = tuple(str(n) for n in TRACKS_PER_GENRE) + ("full",)


def genre_of(clip):
    """The clip's genre if its tags name exactly one of the ten genres, else None."""
    genres = [t for t in clip.labels["tags"] if t in GENRES]
    return genres[0] if len(genres) == 1 else None


def training_set_name(subset, draw=0, steps=None):
    """How runs, features and results name a training set: "5", "5-draw2" for another draw,
    "5-steps20000" for a run trained for a budget of optimizer steps (train.py --budget)."""
    return str(subset) + (f"-draw{draw}" if draw else "") + (f"-steps{steps}" if steps else "")


# How features and results name a checkpoint: <subset or untrained>[-draw<k>][-steps<N>][-seed<k>][@<step>]
# [#layer<k>]; and results its probes trained on fewer labels (downstream.py --label-fraction, --shots):
# <checkpoint>+labels<F> or +shots<K>, [-draw<k>] for another draw of the labelled examples
CHECKPOINT_NAME = re.compile(r"(?P<base>[^-@#+]+)(?:-draw(?P<draw>\d+))?(?:-steps(?P<budget>\d+))?"
                             r"(?:-seed(?P<seed>\d+))?(?:@(?P<step>\d+))?(?:#layer(?P<layer>\d+))?"
                             r"(?:\+(?P<labels>labels(?P<fraction>[0-9.]+)|shots(?P<shots>\d+))"
                             r"(?:-draw(?P<label_draw>\d+))?)?$")


def checkpoint_order(name):
    """untrained first, then subsets from smallest to full, then anything else; within a
    subset by draw, step budget (the study's epochs first), seed, and the kept weights by step
    before the last ones; a checkpoint's layers (extract_features.py --layers) after its
    embedding, in block order; its probes on fewer labels after those on the whole train split."""
    match = CHECKPOINT_NAME.match(name)
    if not match:
        return len(SUBSETS) + 2, 0, 0, 0, 0, 0, (0, 0, 0), name
    base = match["base"]
    position = 0 if base == "untrained" else 1 + SUBSETS.index(base) if base in SUBSETS else len(SUBSETS) + 1
    step = int(match["step"]) if match["step"] else float("inf")
    return (position, int(match["draw"] or 0), int(match["budget"] or 0), int(match["seed"] or 0), step,
            int(match["layer"] or 0), label_order(match), name)


def label_order(match):
    """The whole train split's labels first, then fractions of it, then shots, each ascending."""
    if not match["labels"]:
        return 0, 0, 0
    kind, amount = (1, float(match["fraction"])) if match["fraction"] else (2, int(match["shots"]))
    return kind, amount, int(match["label_draw"] or 0)


def available(clips):
    """Subsets these clips can fill: every genre must have N single-genre train clips."""
    counts = {g: 0 for g in GENRES}
    for c in clips:
        if c.split == "train" and genre_of(c):
            counts[genre_of(c)] += 1
    return tuple(str(n) for n in TRACKS_PER_GENRE if n <= min(counts.values())) + ("full",)


def _draw_order(draw):
    """The order clips of one genre are taken in: the split's own for the study's draw 0."""
    if draw == 0:
        return None
    return lambda clip_id: hashlib.sha1(f"draw{draw}:{clip_id}".encode()).hexdigest()


def select(clips, subset, draw=0):
    """The train clips of `subset` ("1", ..., "100" or "full") in draw `draw`, in the split's order."""
    subset = str(subset)
    train = [c for c in clips if c.split == "train"]
    if subset == "full":
        if draw != 0:
            raise UserError("draws are of the limited subsets (1 to 100): full is the whole train split")
        return train
    choices = available(clips)
    if subset not in choices:
        raise UserError(f"subset {subset!r} is not available here: choose from {', '.join(choices)}")
    if draw < 0:
        raise UserError(f"invalid draw {draw}: draws are 0 (the study's subset), 1, 2, ...")
    n, order = int(subset), _draw_order(draw)
    chosen = set()
    for genre in GENRES:
        members = [c.id for c in train if genre_of(c) == genre]
        chosen.update((sorted(members, key=order) if order else members)[:n])
    return [c for c in train if c.id in chosen]


def minutes(clips):
    return sum(c.seconds for c in clips) / 60.0


def table(clips, draw=0):
    """Rows of (subset, clips, minutes) for every subset these clips can fill."""
    rows = []
    for subset in available(clips):
        if subset == "full" and draw:
            continue
        chosen = select(clips, subset, draw)
        rows.append((subset, len(chosen), minutes(chosen)))
    return rows


def main():
    parser = ArgumentParser(prog="python -m common.data.subsets", description=__doc__.split("\n")[0])
    add_data_options(parser)
    parser.add_argument("--list", metavar="SUBSET", choices=SUBSETS,
                        help="print the clip ids of this subset, one per line, instead of the table")
    parser.add_argument("--draw", type=non_negative_int, default=0,
                        help="0: the study's subsets (default); 1, 2, ...: seeded genre-balanced draws of the "
                             "same size")
    args = parser.parse_args()
    if args.demo:
        from .dataset import load_dataset
        clips = load_dataset("MTAT", args.data_root, demo=True).clips
        title = "demo MTAT"
    else:
        from .mtat import read_index
        clips = read_index()
        title = "MTAT (real metadata)"
    if args.list:
        print("\n".join(c.id for c in select(clips, args.list, args.draw)))
        return
    print(f"{title}: limited-data subsets of the train split" + (f", draw {args.draw}" if args.draw else ""))
    print(f"{'subset':>7} {'clips':>7} {'minutes':>9}")
    for subset, n, mins in table(clips, args.draw):
        print(f"{subset:>7} {n:>7,} {mins:>9.1f}")


if __name__ == "__main__":
    run(main)
