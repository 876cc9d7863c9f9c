"""A small daily ETL: extract raw events, clean them, and aggregate a report per day.

pipes --module examples.daily_etl DailyReport --date 2024-01-05 --local-scheduler
pipes --module examples.daily_etl Backfill --days 2024-01-01-2024-01-08 --local-scheduler
"""

import csv
import datetime
import json
import random

import pipes
from pipes.format import Gzip


class RawEvents(pipes.Task):
    """Raw events of one day as CSV (here generated; in real life, pulled from a source)."""

    date = pipes.DateParameter()
    root = pipes.Parameter(default="data/etl")

    def output(self):
        return pipes.LocalTarget(f"{self.root}/raw/{self.date:%Y/%m/%d}/events.csv")

    def run(self):
        rng = random.Random(self.date.toordinal())
        with self.output().open("w") as out:
            writer = csv.writer(out)
            writer.writerow(["user", "action", "amount"])
            for _ in range(500):
                amount = rng.choice(["", "-1", str(rng.randint(1, 100))])
                writer.writerow([f"u{rng.randint(1, 50)}", rng.choice(["view", "buy"]), amount])


class CleanEvents(pipes.Task):
    """Drop rows with missing or negative amounts; stored gzipped."""

    date = pipes.DateParameter()
    root = pipes.Parameter(default="data/etl")

    def requires(self):
        return RawEvents(date=self.date, root=self.root)

    def output(self):
        return pipes.LocalTarget(f"{self.root}/clean/{self.date}.csv.gz", format=Gzip)

    def run(self):
        with self.input().open("r") as raw, self.output().open("w") as out:
            writer = csv.writer(out)
            for row in csv.DictReader(raw):
                if row["amount"] and int(row["amount"]) >= 0:
                    writer.writerow([row["user"], row["action"], row["amount"]])


class DailyReport(pipes.Task):
    """Totals per action for one day, as JSON."""

    date = pipes.DateParameter(default=datetime.date.today() - datetime.timedelta(days=1))
    root = pipes.Parameter(default="data/etl")

    def requires(self):
        return CleanEvents(date=self.date, root=self.root)

    def output(self):
        return pipes.LocalTarget(f"{self.root}/reports/{self.date}.json")

    def run(self):
        totals = {}
        with self.input().open("r") as rows:
            for _user, action, amount in csv.reader(rows):
                totals[action] = totals.get(action, 0) + int(amount)
        with self.output().open("w") as out:
            json.dump({"date": str(self.date), "totals": totals}, out, sort_keys=True)


class Backfill(pipes.WrapperTask):
    """Every day's report in an interval, e.g. --days 2024-01 (a month) or 2024-W02 (a week)."""

    days = pipes.DateIntervalParameter()
    root = pipes.Parameter(default="data/etl")

    def requires(self):
        return [DailyReport(date=day, root=self.root) for day in self.days.dates()]
