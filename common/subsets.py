"""Limited-data subsets of the MTAT train split (the study's x-axis).

`N` tracks per genre: from the train clips whose top-50 tags contain exactly one of the
ten genres, the first N of each genre in a fixed pseudo-random order (a hash of the clip
id, so no random generator's version can change it). Taking a prefix of one fixed order
makes the subsets nested: every clip of a smaller subset is in every larger one.
`full` is the whole train split.

    python -m common.subsets           # the table for the real MTAT (no audio needed)
    python -m common.subsets --demo    # the same for the demo data (rendered on first use)
"""
import hashlib

from common.cli import ArgumentParser, UserError, add_data_options, run

GENRES = ("classical", "techno", "electronic", "rock", "indian", "opera", "pop", "new age",
          "country", "choral")
TRACKS_PER_GENRE = (1, 2, 5, 10, 20, 50, 100)
SUBSETS = tuple(str(n) for n in TRACKS_PER_GENRE) + ("full",)


def genre_of(clip):
    """The clip's genre if its tags name exactly one of the ten genres, else None."""
    genres = [t for t in clip.labels["tags"] if t in GENRES]
    return genres[0] if len(genres) == 1 else None


def _order(clip):
    return hashlib.sha1(clip.id.encode()).hexdigest()


def available(clips):
    """Subsets these clips can fill: every genre must have N single-genre train clips."""
    counts = {g: 0 for g in GENRES}
    for c in clips:
        if c.split == "train" and genre_of(c):
            counts[genre_of(c)] += 1
    return tuple(str(n) for n in TRACKS_PER_GENRE if n <= min(counts.values())) + ("full",)


def select(clips, subset):
    """The train clips of `subset` ("1", ..., "100" or "full"), in a fixed order."""
    subset = str(subset)
    train = [c for c in clips if c.split == "train"]
    if subset == "full":
        return train
    choices = available(clips)
    if subset not in choices:
        raise UserError(f"subset {subset!r} is not available here: choose from {', '.join(choices)}")
    n = int(subset)
    chosen = []
    for genre in GENRES:
        chosen += sorted((c for c in train if genre_of(c) == genre), key=_order)[:n]
    return chosen


def minutes(clips):
    return sum(c.seconds for c in clips) / 60.0


def table(clips):
    """Rows of (subset, clips, minutes) for every subset these clips can fill."""
    rows = []
    for subset in available(clips):
        chosen = select(clips, subset)
        rows.append((subset, len(chosen), minutes(chosen)))
    return rows


def main():
    parser = ArgumentParser(prog="python -m common.subsets", description=__doc__.split("\n")[0])
    add_data_options(parser)
    args = parser.parse_args()
    if args.demo:
        from common.dataset import load_dataset
        clips = load_dataset("MTAT", args.data_root, demo=True).clips
        title = "demo MTAT"
    else:
        from common.mtat import read_index
        clips = read_index()
        title = "MTAT (real metadata)"
    print(f"{title}: limited-data subsets of the train split")
    print(f"{'subset':>7} {'clips':>7} {'minutes':>9}")
    for subset, n, mins in table(clips):
        print(f"{subset:>7} {n:>7,} {mins:>9.1f}")


if __name__ == "__main__":
    run(main)
