"""Word count over generated input files.

pipes --module examples.wordcount WordCount --files 5 --local-scheduler
"""

import random
from collections import Counter

import pipes

WORDS = "pipes task target output input requires run scheduler worker data batch cron".split()


class MakeInput(pipes.Task):
    """One generated text file: stands in for data landed by another system."""

    index = pipes.IntParameter()
    out_dir = pipes.Parameter(default="data/wordcount")
    lines = pipes.IntParameter(default=200)

    def output(self):
        return pipes.LocalTarget(f"{self.out_dir}/input/part-{self.index:03d}.txt")

    def run(self):
        rng = random.Random(self.index)
        with self.output().open("w") as out:
            for _ in range(self.lines):
                out.write(" ".join(rng.choice(WORDS) for _ in range(8)) + "\n")


class WordCount(pipes.Task):
    """Count every word over all input files; writes `word<TAB>count`, most common first."""

    files = pipes.IntParameter(default=5, description="how many input files to generate")
    out_dir = pipes.Parameter(default="data/wordcount")

    def requires(self):
        return [MakeInput(index=i, out_dir=self.out_dir) for i in range(self.files)]

    def output(self):
        return pipes.LocalTarget(f"{self.out_dir}/counts-{self.files}.tsv")

    def run(self):
        counts = Counter()
        for target in self.input():
            with target.open("r") as lines:
                for line in lines:
                    counts.update(line.split())
        with self.output().open("w") as out:
            for word, count in counts.most_common():
                out.write(f"{word}\t{count}\n")
