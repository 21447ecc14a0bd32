"""The article catalogue: style clusters, products, colour variants and each article's hidden life.

Articles live in latent *style clusters* (an index, a palette, a graphic style, a price level, a set of
product types, an age and gender audience). A customer's taste is a mix of a few clusters, so who buys
what is low-rank and learnable from history, attributes and images. Each article also carries a hidden
demand curve (weekly launch, rise, decay, seasonality, markdowns) and an outfit partner it tends to be
bought with. Internal order is (cluster, product, variant) so a cluster is one contiguous slice and a
product's colour variants are adjacent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from hm_recsys import schema
from hm_recsys.synth import vocab
from hm_recsys.synth.scales import Scale

# Per index: share of articles, share of transactions (real H&M figures split by index), audience
# age range, audience gender (0 women, 1 men, 2 anyone), price level, graphic styles, palettes.
INDEX_PROFILE: dict[str, dict] = {
    "A": dict(art=0.220, tx=0.450, age=(27, 58), gender=0, price=1.05,
              styles=("basic", "classic", "fancy", "print", "knit"),
              palettes=("monochrome", "navy", "earthy", "pastel", "bright", "dark")),
    "B": dict(art=0.080, tx=0.120, age=(24, 52), gender=0, price=1.0, styles=("basic", "fancy"),
              palettes=("monochrome", "pastel", "dark", "earthy")),
    "C": dict(art=0.076, tx=0.070, age=(20, 52), gender=0, price=0.9, styles=("basic", "fancy"),
              palettes=("metal", "monochrome", "earthy", "bright")),
    "D": dict(art=0.144, tx=0.223, age=(18, 27), gender=0, price=0.72, styles=("basic", "print", "fancy", "denim"),
              palettes=("monochrome", "bright", "pastel", "denim", "dark")),
    "F": dict(art=0.119, tx=0.056, age=(22, 52), gender=1, price=1.0, styles=("basic", "classic", "knit", "denim"),
              palettes=("monochrome", "navy", "earthy", "dark")),
    "G": dict(art=0.090, tx=0.012, age=(27, 40), gender=2, price=0.8, styles=("kids", "basic"),
              palettes=("kids", "pastel")),
    "H": dict(art=0.100, tx=0.012, age=(31, 45), gender=2, price=0.85, styles=("kids", "print", "basic"),
              palettes=("kids", "pastel", "bright", "navy")),
    "I": dict(art=0.080, tx=0.010, age=(35, 50), gender=2, price=0.9, styles=("kids", "print", "basic", "denim"),
              palettes=("kids", "bright", "monochrome", "denim")),
    "J": dict(art=0.059, tx=0.005, age=(29, 45), gender=2, price=0.8, styles=("kids", "print"),
              palettes=("kids", "bright", "pastel")),
    "S": dict(art=0.032, tx=0.040, age=(22, 42), gender=0, price=1.0, styles=("basic", "print"),
              palettes=("monochrome", "bright", "dark", "navy")),
}

# Outfit partner role for each role (bought together in one basket).
PARTNER_ROLE = {"U": "L", "L": "U", "F": "A", "O": "U", "I": "I", "A": "F"}
FALLBACK_ROLES = ("U", "L", "A", "F", "I", "O")

LIGHTNESS = {-1: 0.0, 1: 0.6, 2: 0.9, 3: -0.3, 4: -1.0, 5: 0.2, 6: 0.0, 7: 0.0}
NEUTRAL_MASTERS = {5, 7, 16, 19, 11, 20, 10, -1, 1}

# Sections a cluster can be anchored in (type-specific sections are chosen by _section_for).
MAIN_SECTIONS: dict[str, tuple[int, ...]] = {
    "A": (16, 15, 18, 11, 6, 19, 31), "B": (61,), "C": (66,), "D": (53, 52, 51, 57, 56), "F": (21, 23, 20, 25),
    "G": (41, 42, 44), "H": (43, 45), "I": (77, 76, 72), "J": (47,), "S": (5,),
}

STOCK_BLOCK_DAYS = 35
PRICE_LEVEL = 0.8  # scales the typical type prices so the paid mean lands near the real 0.0278
SUMMER_PEAK_DOY = 185.0
WINTER_PEAK_DOY = 345.0


@dataclass
class Catalog:
    """Articles in internal (cluster, product, variant) order plus their hidden parameters."""

    frame: pl.DataFrame            # articles.csv rows (schema.ARTICLE_COLUMNS), internal order
    cluster_start: np.ndarray      # (K+1,) slice bounds of each cluster
    cluster_weight: np.ndarray     # (K,) share of demand
    cluster_age: np.ndarray        # (K,) audience age centre
    cluster_age_width: np.ndarray  # (K,)
    cluster_gender: np.ndarray     # (K,) 0 women, 1 men, 2 anyone
    product: np.ndarray            # (N,) product row of each article
    prod_start: np.ndarray         # (P,) first article of each product
    prod_count: np.ndarray         # (P,) variants of each product
    launch: np.ndarray             # (N,) launch day relative to the first day of transactions
    rise: np.ndarray
    tau: np.ndarray
    off_sale: np.ndarray           # (N,) first day the article is no longer sold
    peak: np.ndarray
    season_amp: np.ndarray
    season_peak: np.ndarray        # day of year of the type's season peak
    shelf: np.ndarray              # shelf price before markdown (currency units, max 349)
    md_day: np.ndarray             # first markdown day (inf when never marked down)
    md_factor: np.ndarray
    lightness: np.ndarray          # -1 dark .. +1 light
    vividness: np.ndarray          # -0.5 neutral .. +1 bright
    price_rel: np.ndarray          # log(price / typical price of its type)
    partner: np.ndarray            # outfit partner article (internal index) or -1
    shape: np.ndarray              # silhouette name per article (object)
    pattern: np.ndarray            # drawn pattern per article (object)
    rgb: np.ndarray                # (N, 3) uint8
    has_image: np.ndarray          # (N,) bool
    stock_phase: np.ndarray        # (N,) offset of the sold-out block grid
    stock_salt: np.ndarray         # (N,) uint64 per-article hash salt
    out_of_stock: float            # share of blocks an article is sold out
    tail_floor: float              # an article on sale never falls below this share of its peak

    @property
    def n(self) -> int:
        return self.frame.height

    @property
    def cluster(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.cluster_weight)), np.diff(self.cluster_start))

    def demand(self, day: int, day_of_year: float) -> np.ndarray:
        """Relative demand of every article on ``day``: launch rise, decay to a floor, type season and a
        markdown boost; 0 when not on sale (before launch, after its shelf life, sold out)."""
        x = day - self.launch
        life = np.where(x < self.rise, (x + 1.0) / (self.rise + 1.0), np.exp(-(x - self.rise) / self.tau))
        life = np.maximum(life, self.tail_floor)
        season = 1.0 + self.season_amp * np.cos(2 * np.pi * (day_of_year - self.season_peak) / 365.25)
        since_md = day - self.md_day
        boost = 1.0 + np.where(since_md >= 0, 0.8 * np.exp(-np.maximum(since_md, 0) / 14.0), 0.0)
        on_sale = (x >= 0) & (day < self.off_sale) & self.in_stock(day)
        return np.where(on_sale, self.peak * life * season * boost, 0.0)

    def in_stock(self, day: int) -> np.ndarray:
        """Sold-out spells: each article is out of stock for whole STOCK_BLOCK_DAYS blocks now and then
        (never in its first weeks), so sales pause and resume like a restock."""
        block = ((day + self.stock_phase) // STOCK_BLOCK_DAYS).astype(np.uint64)
        h = (self.stock_salt + block * np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        u = (h >> np.uint64(40)).astype(np.float64) / float(1 << 24)
        return (u >= self.out_of_stock) | (day - self.launch < 14)

    def price_factor(self, day: int) -> np.ndarray:
        return np.where(day >= self.md_day, self.md_factor, 1.0)


def day_of_year(start: dt.date, n_days: int) -> np.ndarray:
    """Day of year (1..366) of each day index 0..n_days-1 counted from ``start``."""
    days = np.datetime64(start) + np.arange(n_days)
    return (days - days.astype("datetime64[Y]")).astype(int) + 1


def _split(total: int, weights: np.ndarray, minimum: int = 0) -> np.ndarray:
    """Integer split of ``total`` proportional to ``weights`` (largest remainder), each >= minimum."""
    weights = np.asarray(weights, dtype=float)
    base = np.full(len(weights), minimum)
    rest = total - base.sum()
    raw = weights / weights.sum() * rest
    out = np.floor(raw).astype(int)
    order = np.argsort(-(raw - out), kind="stable")
    out[order[: rest - out.sum()]] += 1
    return base + out


def _snap_price(x: np.ndarray) -> np.ndarray:
    grid = np.asarray(vocab.PRICE_GRID)
    pos = np.clip(np.searchsorted(np.log(grid), np.log(x)), 1, len(grid) - 1)
    lo, hi = grid[pos - 1], grid[pos]
    return np.where(np.abs(np.log(x / lo)) < np.abs(np.log(hi / x)), lo, hi)


def _section_for(index: str, cluster_section: int, gender: int, ptype: vocab.ProductType) -> int:
    """The section that sells a product type inside an index (mirrors how H&M sections split)."""
    if index == "D" and ptype.role == "A":
        return 50
    if index == "F":
        if ptype.group == "Shoes":
            return 29
        if ptype.role == "A":
            return 27
        if ptype.role == "I":
            return 26
    if index == "J":
        return 48 if ptype.group == "Shoes" else 47
    if index == "C":
        if ptype.group == "Shoes":
            return 64
        return 65 if ptype.group in ("Bags",) or ptype.name in ("Scarf", "Hat/beanie", "Gloves", "Umbrella") else 66
    if index == "B":
        if ptype.group == "Swimwear":
            return 60
        return 62 if ptype.group in ("Nightwear", "Socks & Tights") else 61
    if index == "S":
        return {0: 5, 1: 8, 2: 82}[gender]
    if index == "H" and ptype.role == "O":
        return 46
    return cluster_section


def build_catalog(scale: Scale, rng: np.random.Generator) -> Catalog:
    """Draw clusters, products and colour variants for ``scale`` (deterministic given ``rng``)."""
    clusters = _make_clusters(scale, rng)
    recs = _make_products(scale, clusters, rng)
    cat = lambda k: np.concatenate(recs[k])  # noqa: E731
    cluster, product = cat("cluster"), cat("product")
    ptypes: list[vocab.ProductType] = recs["ptype"]
    colours: list[vocab.Colour] = recs["colour"]
    pos = np.array(recs["pos"])
    n = len(cluster)
    launch = cat("launch") + np.where(pos == 0, 0.0, cat("vdelay"))
    # peak demand: product appeal, variant appeal and colour taste (black sells most), one spread knob
    colour_pop = np.log([c.popularity for c in colours])
    z = 0.8 * cat("ppop") + 0.4 * cat("vpop") + 0.45 * (colour_pop - colour_pop.mean()) / colour_pop.std()
    peak = np.exp(scale.popularity_sigma * z) * np.where(cat("hit"), scale.hit_boost, 1.0)
    season = np.array([t.season for t in ptypes])
    shelf, tau, rise = cat("price"), cat("tau"), cat("rise")
    off_sale = cat("launch") + cat("shelf_life")  # later colour variants leave with the rest of the product
    # markdowns: most articles go on sale once their demand has faded
    marked = rng.random(n) < 0.7
    md_day = np.where(marked, launch + rise + tau * rng.uniform(0.8, 2.5, n), np.inf)
    md_factor = rng.choice([0.5, 0.6, 0.7], n, p=[0.3, 0.4, 0.3])

    prod_count = np.bincount(product)
    prod_start = np.concatenate([[0], np.cumsum(prod_count)[:-1]])
    cluster_start = np.concatenate([[0], np.cumsum(np.bincount(cluster, minlength=len(clusters)))])
    roles = np.array([t.role for t in ptypes])
    partner = _outfit_partners(roles, launch, product, cluster_start, rng)
    product_code, article_id = _article_ids(launch, product, prod_start, prod_count, pos, rng)
    prod_names, descs = _names_and_descriptions(ptypes, product, prod_start, rng)
    index_code = np.array([c["index"] for c in clusters], dtype=object)[cluster]
    section, garment, dep_no, dep_name = _hierarchy(clusters, cluster, index_code, ptypes, rng)
    graphic = cat("graphic")

    frame = pl.DataFrame({
        "article_id": article_id,
        "product_code": product_code[product],
        "prod_name": prod_names,
        "product_type_no": [t.no for t in ptypes],
        "product_type_name": [t.name for t in ptypes],
        "product_group_name": [t.group for t in ptypes],
        "graphical_appearance_no": graphic,
        "graphical_appearance_name": [vocab.GRAPHICS[g][0] for g in graphic.tolist()],
        "colour_group_code": [c.code for c in colours],
        "colour_group_name": [c.name for c in colours],
        "perceived_colour_value_id": [c.value_id for c in colours],
        "perceived_colour_value_name": [vocab.COLOUR_VALUES[c.value_id] for c in colours],
        "perceived_colour_master_id": [c.master_id for c in colours],
        "perceived_colour_master_name": [vocab.COLOUR_MASTERS[c.master_id] for c in colours],
        "department_no": dep_no,
        "department_name": dep_name,
        "index_code": index_code.tolist(),
        "index_name": [vocab.INDEXES[i][0] for i in index_code],
        "index_group_no": [vocab.INDEXES[i][1] for i in index_code],
        "index_group_name": [vocab.INDEX_GROUPS[vocab.INDEXES[i][1]] for i in index_code],
        "section_no": section,
        "section_name": [vocab.SECTIONS[s][0] for s in section.tolist()],
        "garment_group_no": garment,
        "garment_group_name": [vocab.GARMENT_GROUPS[g] for g in garment.tolist()],
        "detail_desc": descs,
    }, schema=schema.ARTICLE_COLUMNS)

    value_ids = np.array([c.value_id for c in colours])
    masters = np.array([c.master_id for c in colours])
    vivid = np.where(value_ids == 5, 1.0, np.where(np.isin(masters, list(NEUTRAL_MASTERS)), -0.5, 0.4))
    return Catalog(
        frame=frame,
        cluster_start=cluster_start,
        cluster_weight=np.array([c["tx"] for c in clusters]) / sum(c["tx"] for c in clusters),
        cluster_age=np.array([c["age"] for c in clusters]),
        cluster_age_width=np.array([c["age_width"] for c in clusters]),
        cluster_gender=np.array([c["gender"] for c in clusters]),
        product=product,
        prod_start=prod_start,
        prod_count=prod_count,
        launch=launch,
        rise=rise,
        tau=tau,
        off_sale=off_sale,
        peak=peak,
        season_amp=0.85 * np.abs(season),
        season_peak=np.where(season > 0, SUMMER_PEAK_DOY, WINTER_PEAK_DOY),
        shelf=shelf,
        md_day=md_day,
        md_factor=md_factor,
        lightness=np.array([LIGHTNESS[v] for v in value_ids.tolist()]),
        vividness=vivid,
        price_rel=np.log(shelf / np.array([t.price for t in ptypes])),
        partner=partner,
        shape=np.array([t.shape for t in ptypes], dtype=object),
        pattern=np.array([vocab.GRAPHICS[g][1] for g in graphic.tolist()], dtype=object),
        rgb=np.array([c.rgb for c in colours], dtype=np.uint8),
        has_image=rng.random(n) >= 0.004,
        stock_phase=rng.integers(0, STOCK_BLOCK_DAYS, n),
        stock_salt=rng.integers(0, 2**62, n).astype(np.uint64),
        out_of_stock=scale.out_of_stock,
        tail_floor=scale.tail_floor,
    )


def _make_clusters(scale: Scale, rng: np.random.Generator) -> list[dict]:
    """Style clusters per index: demand share, article share, product types, palette, graphic style,
    price level, audience (age, gender) and anchoring section."""
    types_by_name: dict[str, list[vocab.ProductType]] = {}
    for t in vocab.PRODUCT_TYPES:
        types_by_name.setdefault(t.name, []).append(t)
    colour_by_name = {c.name: c for c in vocab.COLOURS}
    index_codes = list(INDEX_PROFILE)
    # article share per index: the real split, pulled toward the demand split on small catalogues so
    # that popularity is not concentrated by the few best-selling indexes alone
    art_share = np.array([INDEX_PROFILE[i]["art"] ** (1 - scale.article_mix_demand) *
                          INDEX_PROFILE[i]["tx"] ** scale.article_mix_demand for i in index_codes])
    art_share /= art_share.sum()
    k_per_index = _split(scale.n_clusters, art_share, minimum=1)
    clusters = []
    for code, k, share in zip(index_codes, k_per_index, art_share):
        prof = INDEX_PROFILE[code]
        tx_split = rng.dirichlet(np.full(k, 3.0))
        art_split = tx_split * share  # bigger styles carry proportionally more articles
        tx_split = tx_split * prof["tx"]
        allowed = [t for name in vocab.INDEX_TYPES[code] for t in types_by_name[name]]
        for j in range(k):
            keep = rng.random(len(allowed)) < 0.6
            if keep.sum() < 3:
                keep[rng.choice(len(allowed), 3, replace=False)] = True
            tw = np.array([t.weight for t in allowed]) * rng.lognormal(0, 0.6, len(allowed)) * keep
            n_pal = 1 + int(rng.random() < 0.4)
            pal_names = list(dict.fromkeys(
                c for p in rng.choice(prof["palettes"], n_pal, replace=False) for c in vocab.PALETTES[p]))
            pal = [colour_by_name[c] for c in pal_names]
            pal_w = np.array([c.popularity for c in pal]) * rng.lognormal(0, 0.7, len(pal))
            gender = prof["gender"]
            if code == "S":
                gender = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1]))
            elif code == "D" and rng.random() < 0.15:
                gender = 2
            section = int(rng.choice(MAIN_SECTIONS[code]))
            clusters.append(dict(
                index=code, tx=tx_split[j], art=art_split[j], types=allowed, type_w=tw / tw.sum(),
                palette=pal, palette_w=pal_w / pal_w.sum(), style=str(rng.choice(prof["styles"])),
                price=prof["price"] * rng.lognormal(0, 0.22) * (2.2 if section == 31 else 1.0),
                age=rng.uniform(*prof["age"]), age_width=rng.uniform(6, 12), gender=gender, section=section,
            ))
    return clusters


def _make_products(scale: Scale, clusters: list[dict], rng: np.random.Generator) -> dict[str, list]:
    """Products of every cluster with their colour variants and hidden life cycles (per-cluster lists)."""
    n_days = scale.n_days
    first_wed = (2 - scale.start.weekday()) % 7
    n_weeks = max(1, (n_days - first_wed + 6) // 7)
    doy = day_of_year(scale.start, n_days + 60)
    arts_per_cluster = _split(scale.n_articles, [c["art"] for c in clusters], minimum=4)
    recs: dict[str, list] = {k: [] for k in (
        "cluster", "product", "ptype", "graphic", "price", "launch", "rise", "tau", "shelf_life", "ppop", "hit",
        "colour", "vpop", "vdelay", "pos")}
    product_counter = 0
    for ci, (cl, n_art) in enumerate(zip(clusters, arts_per_cluster)):
        variants = rng.geometric(0.447, (int(n_art / 2.2) + 8) * 2)  # ~2.24 colours per product
        cum = np.cumsum(variants)
        n_prod = int(np.searchsorted(cum, n_art)) + 1
        variants = variants[:n_prod].copy()
        variants[-1] -= cum[n_prod - 1] - n_art
        types = rng.choice(len(cl["types"]), n_prod, p=cl["type_w"])
        gstyle = vocab.GRAPHIC_STYLES[cl["style"]]
        g_codes = np.array(list(gstyle))
        g_w = np.array(list(gstyle.values()), dtype=float)
        graphics = rng.choice(g_codes, n_prod, p=g_w / g_w.sum())
        base_price = np.array([cl["types"][t].price for t in types]) * PRICE_LEVEL
        price = _snap_price(base_price * cl["price"] * rng.lognormal(0, 0.25, n_prod))
        season = np.array([cl["types"][t].season for t in types])
        # life cycle class: most articles are short-lived, a few basics sell for a year or more
        p_long = 0.12 if cl["style"] == "basic" else 0.05
        u = rng.random(n_prod)
        cls = np.where(u < p_long, 2, np.where(u < p_long + 0.28, 1, 0))
        tau = np.select([cls == 0, cls == 1], [rng.uniform(7, 28, n_prod), rng.uniform(35, 110, n_prod)],
                        rng.uniform(180, 520, n_prod))
        shelf_life = np.select([cls == 0, cls == 1], [rng.uniform(70, 150, n_prod), rng.uniform(150, 300, n_prod)],
                               rng.uniform(400, 1100, n_prod)) * scale.shelf_life_scale
        rise = rng.uniform(2, 10, n_prod)
        ppop = rng.normal(0, 1, n_prod) + np.where(cls == 2, -0.8, 0.0)
        # a few hits sell several times more (long-selling basics are hits more often)
        hit = rng.random(n_prod) < scale.hit_share * np.where(cls == 2, 5.0, 1.0)
        # launches: ~22% already on sale when the data starts, the rest on weekly launch days;
        # the first two products of a style are its evergreen basics, some of them all-time best sellers
        pre = rng.random(n_prod) < 0.22
        pre[:2] = True
        cls[:2] = 2
        tau[:2] = np.maximum(tau[:2], 300)
        shelf_life[:2] = np.maximum(shelf_life[:2], 2 * n_days)
        hit[:2] = rng.random(2) < scale.evergreen_hit_share
        ppop[:2] += 0.8
        # seasonal types launch ahead of their season (rejection over a few candidate weeks)
        cand_day = first_wed + 7 * rng.integers(0, n_weeks, (n_prod, 6))
        peak_doy = np.where(season > 0, SUMMER_PEAK_DOY, WINTER_PEAK_DOY)
        amp = 0.85 * np.abs(season)
        ahead = doy[np.minimum(cand_day + 28, n_days + 59)]
        accept = (1 + amp[:, None] * np.cos(2 * np.pi * (ahead - peak_doy[:, None]) / 365.25)) / (1 + amp[:, None])
        ok = rng.random(accept.shape) < accept
        pick = np.where(ok.any(axis=1), ok.argmax(axis=1), 5)
        launch = cand_day[np.arange(n_prod), pick].astype(float) + (rng.random(n_prod) < 0.2)
        launch = np.where(pre, -rng.uniform(0, 0.9, n_prod) * shelf_life, launch)
        # colours: distinct palette colours per product (Gumbel top-k), overflow from any colour
        order = np.argsort(-(np.log(cl["palette_w"])[None, :] + rng.gumbel(size=(n_prod, len(cl["palette"])))),
                           axis=1)
        for p in range(n_prod):
            v = variants[p]
            cols = [cl["palette"][i] for i in order[p, : min(v, len(cl["palette"]))]]
            while len(cols) < v:
                cols.append(vocab.COLOURS[int(rng.integers(1, len(vocab.COLOURS)))])
            recs["colour"].extend(cols)
            recs["pos"].extend(range(v))
        rep = np.repeat
        recs["cluster"].append(np.full(n_art, ci))
        recs["product"].append(rep(np.arange(product_counter, product_counter + n_prod), variants))
        recs["ptype"].extend(rep(np.array([cl["types"][t] for t in types], dtype=object), variants))
        graphic_v = rep(graphics, variants)
        redraw = rng.random(n_art) < 0.1  # now and then a colour variant also changes the pattern
        recs["graphic"].append(np.where(redraw, rng.choice(g_codes, n_art, p=g_w / g_w.sum()), graphic_v))
        for key, values in (("price", price), ("launch", launch), ("rise", rise), ("tau", tau),
                            ("shelf_life", shelf_life), ("ppop", ppop), ("hit", hit)):
            recs[key].append(rep(values, variants))
        recs["vpop"].append(rng.normal(0, 1, n_art))
        recs["vdelay"].append(np.where(rng.random(n_art) < 0.25, 7.0 * rng.geometric(0.3, n_art), 0.0))
        product_counter += n_prod
    return recs


def _outfit_partners(roles: np.ndarray, launch: np.ndarray, product: np.ndarray, cluster_start: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Each article's outfit partner: a complementary role in the same cluster launched about together."""
    partner = np.full(len(roles), -1, dtype=np.int64)
    for ci in range(len(cluster_start) - 1):
        sl = np.arange(cluster_start[ci], cluster_start[ci + 1])
        for role in np.unique(roles[sl]):
            src = sl[roles[sl] == role]
            want = [PARTNER_ROLE[role], *FALLBACK_ROLES]
            cand = next((sl[roles[sl] == w] for w in want if (roles[sl] == w).sum() >= 2), None)
            if cand is None:
                continue
            # match launch-ordered sources to launch-ordered candidates by rank: partners launch
            # about together and every candidate partners about equally many articles (no hubs)
            cand = cand[np.argsort(launch[cand], kind="stable")]
            src = src[np.argsort(launch[src], kind="stable")]
            j = (np.arange(len(src)) * len(cand)) // len(src) + rng.integers(-1, 2, len(src))
            j = np.clip(j, 0, len(cand) - 1)
            same = product[cand[j]] == product[src]
            j = np.where(same, (j + 1) % len(cand), j)
            partner[src] = cand[j]
    return partner


def _article_ids(launch: np.ndarray, product: np.ndarray, prod_start: np.ndarray, prod_count: np.ndarray,
                 pos: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Product codes rising with launch date (6 digits) and 10-digit zero-padded article ids
    ``product_code * 1000 + variant number`` (variant numbers increase, with gaps, within a product)."""
    n_prod = len(prod_count)
    order_launch = np.argsort(launch[prod_start] + rng.normal(0, 45, n_prod), kind="stable")
    product_code = np.empty(n_prod, dtype=np.int64)
    product_code[order_launch] = np.sort(rng.choice(np.arange(108775, 960000), n_prod, replace=False))
    first_var = rng.integers(1, 30, n_prod)
    steps = rng.geometric(0.5, len(product))
    steps[prod_start] = 0
    var_no = np.cumsum(steps)
    var_no = var_no - np.repeat(var_no[prod_start], prod_count) + np.repeat(first_var, prod_count)
    var_no = np.minimum(var_no, 999 - (prod_count.max() - 1) + pos)  # keep 3 digits, still distinct
    article_id = np.char.zfill((product_code[product] * 1000 + var_no).astype(str), schema.ARTICLE_ID_DIGITS)
    return product_code, article_id


def _names_and_descriptions(ptypes: list, product: np.ndarray, prod_start: np.ndarray,
                            rng: np.random.Generator) -> tuple[list, list]:
    """prod_name (shared by a product's colours, mostly distinct) and detail_desc (~0.4% empty)."""
    n_prod = len(prod_start)
    words, quals = vocab.NAME_WORDS, vocab.NAME_QUALIFIERS
    w_i = rng.integers(0, len(words), n_prod)
    q_i = rng.integers(0, len(quals), n_prod)
    suffix = rng.random(n_prod)
    mats = rng.integers(0, len(vocab.MATERIALS), n_prod)
    d1 = rng.integers(0, 100, n_prod)
    d2 = rng.integers(1, 100, n_prod)
    names, descs = [], []
    for p in range(n_prod):
        t = ptypes[prod_start[p]]
        name = " ".join(x for x in (words[w_i[p]], quals[q_i[p]]) if x)
        if suffix[p] < 0.35:
            name = f"{name} {t.name.split('/')[0].split(' ')[-1].lower()}"
        elif suffix[p] < 0.4:
            name = f"{name} ({int(suffix[p] * 100) % 5 + 1})"
        names.append(name)
        det = vocab.DETAILS[t.role]
        a, b = det[d1[p] % len(det)], det[(d1[p] + d2[p]) % len(det)]
        second = f" and {b}" if b != a else ""
        descs.append(f"{t.name} in {vocab.MATERIALS[mats[p]]} with {a}{second}.")
    desc_a = np.array(descs, dtype=object)[product]
    desc_a[rng.random(len(product)) < 0.004] = None
    return np.array(names, dtype=object)[product].tolist(), desc_a.tolist()


def _hierarchy(clusters: list[dict], cluster: np.ndarray, index_code: np.ndarray, ptypes: list,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """section_no, garment_group_no, department_no and department_name of every article; a department
    is a (section, garment group) pair and department names repeat across sections."""
    gender_c = np.array([c["gender"] for c in clusters])
    section_c = np.array([c["section"] for c in clusters])
    n = len(cluster)
    cache: dict = {}
    section = np.empty(n, dtype=np.int64)
    garment = np.empty(n, dtype=np.int64)
    for i in range(n):
        key = (index_code[i], int(section_c[cluster[i]]), int(gender_c[cluster[i]]), ptypes[i])
        if key not in cache:
            t = ptypes[i]
            cache[key] = (_section_for(*key), vocab.GARMENT_OVERRIDES.get((key[0], t.name), t.garment))
        section[i], garment[i] = cache[key]
    garment = np.where(rng.random(n) < 0.01, 1015, garment)  # a few articles sit in "Special Offers"
    dept_keys = np.unique(np.stack([section, garment], axis=1), axis=0)
    dept_codes = rng.choice(np.arange(1201, 9990), len(dept_keys), replace=False)
    dept = {(s, g): (code, vocab.DEPARTMENT_NAMES[g][(s * 7 + g) % len(vocab.DEPARTMENT_NAMES[g])])
            for (s, g), code in zip(dept_keys.tolist(), dept_codes.tolist())}
    pairs = list(zip(section.tolist(), garment.tolist()))
    return section, garment, np.array([dept[k][0] for k in pairs]), [dept[k][1] for k in pairs]
