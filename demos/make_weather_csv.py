"""Write `weather.csv`, the made-up daily weather that `data-tutorial.md` analyses.

One year (2023) of a fictional harbour town: day of the year, mean temperature (°C) and rainfall
(mm). A seasonal cycle, a small warming trend and noise from a seeded generator, so the file is
the same on every run:

    python demos/make_weather_csv.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DAYS = 365
SEED = 2023


def rows() -> list[tuple[int, float, float]]:
    """(day, temperature, rain) for every day of the year."""
    rng = np.random.default_rng(SEED)
    day = np.arange(1, DAYS + 1)
    season = 8.5 * np.sin(2 * np.pi * (day - 111) / DAYS)
    temperature = 10.8 + season + 0.004 * day + rng.normal(0.0, 2.2, DAYS)
    wet = rng.random(DAYS) < 0.45 - 0.15 * np.sin(2 * np.pi * (day - 111) / DAYS)
    rain = np.where(wet, rng.gamma(1.3, 4.0, DAYS), 0.0)
    return [
        (int(d), round(float(t), 1), round(float(r), 1))
        for d, t, r in zip(day, temperature, rain, strict=True)
    ]


def main() -> None:
    """Write the file beside this script."""
    target = Path(__file__).resolve().parent / "weather.csv"
    lines = ["day,temperature,rain"] + [f"{d},{t:.1f},{r:.1f}" for d, t, r in rows()]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{target.name}: {len(lines) - 1} days")


if __name__ == "__main__":
    main()
