"""World sizes and the behavioural knobs calibrated per size.

The knobs that depend on catalogue size live here (popularity concentration must be stronger with
105k articles than with 5k for last-week top-60 recall to land near the real 6-8%); everything else
is shared so the three scales are the same world at different magnifications.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

END_DATE = dt.date(2020, 9, 22)           # last day of transactions_train.csv (a Tuesday)
FULL_START_DATE = dt.date(2018, 9, 20)    # 734 days


@dataclass(frozen=True)
class Scale:
    """One world size. Knobs without a default depend on the catalogue size; the rest are shared."""

    name: str
    n_customers: int
    n_articles: int
    start: dt.date
    n_clusters: int                      # latent style clusters (a customer's taste mixes a few)
    images: bool                         # default for generate_world(images=None)
    image_size: int                      # square JPEG side in pixels
    popularity_sigma: float              # log-normal spread of article peak demand
    end: dt.date = END_DATE
    # catalogue demand
    hit_share: float = 0.0               # share of products that are hits ...
    hit_boost: float = 1.0               # ... selling this many times more
    evergreen_hit_share: float = 0.3     # share of each style's two evergreen basics that are hits
    tail_floor: float = 0.35             # an article on sale never falls below this share of its peak
    shelf_life_scale: float = 1.0        # multiplies how long articles stay on sale
    out_of_stock: float = 0.12           # share of 5-week blocks an article is sold out
    article_mix_demand: float = 0.0      # 0: real article split per index; 1: split like demand
    # customers and visits
    visits_per_year: float = 2.4         # median visits per year of an occasional shopper
    rate_sigma: float = 0.5              # log-normal spread of visit rates
    rhythm: float = 5.0                  # median gamma shape of occasional shoppers' gaps (>1: periodic)
    heavy_share: float = 0.09            # share of frequent, bursty shoppers
    heavy_rate: float = 13.0             # their visit rate relative to occasional shoppers
    mean_lifetime_days: float = 1500.0   # customers churn after an exponential lifetime
    basket_mean: float = 2.35            # mean distinct articles per visit
    # purchase behaviour
    taste_concentration: float = 0.4     # Dirichlet parameter of favourite-style weights (lower: focused)
    background_share: float = 0.08       # mean share of baskets from age-typical, not personal, styles
    heavy_background_share: float = 0.3  # ... for frequent shoppers, who browse widely
    # mean chance a line re-buys a past article: 0.07 puts recent-purchases-then-popular at the real data's
    # MAP@12 0.020-0.027 on the demo (0.0207-0.0220, seeds 0-2) and full (0.0208) worlds, repurchase recall in
    # band; 0.06 gave 0.017-0.019 (benchmarks/results/2026-12-07_world_calibration_*.txt)
    repurchase: float = 0.07
    variant: float = 0.005               # chance a line buys another colour of a past product
    history_partner: float = 0.03        # chance a line completes an outfit with a past purchase
    basket_partner: float = 0.1          # chance a later basket line is the previous line's outfit partner
    duplicate: float = 0.062             # mean chance a line has several units (exact duplicate rows)

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1


SCALES: dict[str, Scale] = {
    "tiny": Scale(
        name="tiny", n_customers=2_000, n_articles=500, start=END_DATE - dt.timedelta(days=7 * 30 - 1),
        n_clusters=10, images=True, image_size=64, popularity_sigma=0.2, hit_share=0.008, hit_boost=2.5,
        evergreen_hit_share=0.2, shelf_life_scale=3.5, article_mix_demand=0.8, out_of_stock=0.15, variant=0.015,
    ),
    "demo": Scale(
        name="demo", n_customers=40_000, n_articles=5_000, start=FULL_START_DATE,
        n_clusters=24, images=True, image_size=128, popularity_sigma=0.2, hit_share=0.008, hit_boost=2.5,
        evergreen_hit_share=0.2, shelf_life_scale=3.5, article_mix_demand=0.8, out_of_stock=0.15, variant=0.015,
    ),
    "full": Scale(
        name="full", n_customers=1_371_980, n_articles=105_542, start=FULL_START_DATE,
        n_clusters=240, images=False, image_size=128, popularity_sigma=1.25, hit_share=0.005, hit_boost=6.0,
        tail_floor=0.2, out_of_stock=0.02, variant=0.06,
    ),
}


def get_scale(scale: str | Scale) -> Scale:
    if isinstance(scale, Scale):
        return scale
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}") from None
