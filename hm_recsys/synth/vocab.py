"""Code/name vocabularies of the H&M article hierarchy, shaped like the real articles.csv.

Real codes where they are public (index groups, index letters, colour groups, graphical appearances,
garment groups, the common product types); the rest are plausible inventions. Each entry also carries
the hidden attributes the generator needs (silhouette, season, price, outfit role), which never reach
the CSV but shape what customers buy and what the images look like.
"""

from __future__ import annotations

from dataclasses import dataclass

INDEX_GROUPS: dict[int, str] = {1: "Ladieswear", 2: "Baby/Children", 3: "Menswear", 4: "Sport", 26: "Divided"}

# index_code -> (index_name, index_group_no)
INDEXES: dict[str, tuple[str, int]] = {
    "A": ("Ladieswear", 1),
    "B": ("Lingeries/Tights", 1),
    "C": ("Ladies Accessories", 1),
    "D": ("Divided", 26),
    "F": ("Menswear", 3),
    "G": ("Baby Sizes 50-98", 2),
    "H": ("Children Sizes 92-140", 2),
    "I": ("Children Sizes 134-170", 2),
    "J": ("Children Accessories, Swimwear", 2),
    "S": ("Sport", 4),
}

# garment_group_no -> name
GARMENT_GROUPS: dict[int, str] = {
    1001: "Unknown",
    1002: "Jersey Basic",
    1003: "Knitwear",
    1004: "Trousers Denim",
    1005: "Jersey Fancy",
    1006: "Woven/Jersey/Knitted mix Baby",
    1007: "Outdoor",
    1008: "Dressed",
    1009: "Trousers",
    1010: "Blouses",
    1011: "Shorts",
    1012: "Shoes",
    1013: "Dresses Ladies",
    1014: "Skirt",
    1015: "Special Offers",
    1016: "Socks and Tights",
    1017: "Under-, Nightwear",
    1018: "Swimwear",
    1019: "Accessories",
    1020: "Dresses/Skirts girls",
    1021: "Shirts",
}

# perceived_colour_value_id -> name
COLOUR_VALUES: dict[int, str] = {
    -1: "Unknown", 1: "Dusty Light", 2: "Light", 3: "Medium Dusty", 4: "Dark", 5: "Bright", 6: "Undefined",
    7: "Medium",
}
# perceived_colour_master_id -> name
COLOUR_MASTERS: dict[int, str] = {
    -1: "Unknown", 1: "undefined", 2: "Blue", 3: "Bluish Green", 4: "Brown", 5: "Black", 6: "Green",
    7: "Grey", 8: "Khaki green", 9: "Lilac Purple", 10: "Metal", 11: "Mole", 12: "Orange", 13: "Pink",
    14: "Red", 15: "Turquoise", 16: "White", 17: "Yellow", 18: "Yellowish Green", 19: "Beige",
    20: "Yellowish Brown",
}


@dataclass(frozen=True)
class Colour:
    code: int
    name: str
    value_id: int
    master_id: int
    rgb: tuple[int, int, int]
    popularity: float  # global taste for the colour (black sells most)


COLOURS: tuple[Colour, ...] = (
    Colour(-1, "Unknown", -1, -1, (128, 128, 128), 0.2),
    Colour(1, "Other", 6, 1, (150, 140, 120), 0.2),
    Colour(3, "Silver", 6, 10, (192, 192, 196), 0.4),
    Colour(5, "Gold", 6, 10, (212, 175, 55), 0.5),
    Colour(6, "Light Grey", 2, 7, (200, 200, 200), 1.0),
    Colour(7, "Grey", 3, 7, (140, 140, 140), 1.0),
    Colour(8, "Dark Grey", 4, 7, (80, 80, 82), 1.0),
    Colour(9, "Black", 4, 5, (20, 20, 22), 3.0),
    Colour(10, "White", 2, 16, (250, 250, 250), 1.8),
    Colour(11, "Off White", 1, 16, (240, 234, 218), 0.9),
    Colour(12, "Light Beige", 1, 19, (232, 214, 186), 1.0),
    Colour(13, "Beige", 3, 19, (200, 175, 140), 1.0),
    Colour(14, "Dark Beige", 4, 19, (160, 135, 100), 0.5),
    Colour(15, "Other Yellow", 6, 17, (230, 200, 60), 0.2),
    Colour(16, "Light Yellow", 2, 17, (250, 240, 160), 0.4),
    Colour(17, "Yellowish Brown", 3, 20, (170, 120, 50), 0.7),
    Colour(18, "Yellow", 5, 17, (245, 215, 40), 0.5),
    Colour(19, "Greenish Khaki", 3, 8, (130, 130, 80), 0.7),
    Colour(20, "Dark Yellow", 4, 17, (190, 150, 20), 0.3),
    Colour(21, "Other Pink", 6, 13, (220, 140, 170), 0.2),
    Colour(22, "Light Orange", 2, 12, (250, 190, 140), 0.3),
    Colour(23, "Orange", 5, 12, (240, 130, 40), 0.4),
    Colour(24, "Dark Orange", 4, 12, (190, 90, 30), 0.3),
    Colour(25, "Other Orange", 6, 12, (220, 120, 80), 0.1),
    Colour(41, "Light Red", 2, 14, (240, 130, 130), 0.3),
    Colour(42, "Red", 5, 14, (200, 30, 40), 0.8),
    Colour(43, "Dark Red", 4, 14, (120, 20, 30), 0.6),
    Colour(44, "Other Red", 6, 14, (180, 60, 60), 0.1),
    Colour(50, "Other Turquoise", 6, 15, (60, 170, 170), 0.1),
    Colour(51, "Light Pink", 1, 13, (248, 200, 210), 1.0),
    Colour(52, "Pink", 5, 13, (235, 120, 160), 0.8),
    Colour(53, "Dark Pink", 4, 13, (170, 50, 100), 0.4),
    Colour(61, "Light Purple", 1, 9, (210, 190, 230), 0.4),
    Colour(62, "Purple", 5, 9, (130, 70, 160), 0.3),
    Colour(63, "Dark Purple", 4, 9, (80, 40, 90), 0.3),
    Colour(71, "Light Blue", 2, 2, (170, 200, 235), 1.0),
    Colour(72, "Blue", 5, 2, (50, 90, 180), 0.9),
    Colour(73, "Dark Blue", 4, 2, (25, 35, 80), 1.8),
    Colour(74, "Other Blue", 6, 2, (80, 110, 150), 0.1),
    Colour(81, "Light Turquoise", 2, 15, (160, 225, 220), 0.3),
    Colour(82, "Turquoise", 5, 15, (40, 180, 170), 0.3),
    Colour(83, "Dark Turquoise", 4, 3, (20, 100, 100), 0.2),
    Colour(90, "Other Green", 6, 6, (100, 150, 100), 0.1),
    Colour(91, "Light Green", 2, 18, (180, 220, 160), 0.4),
    Colour(92, "Green", 5, 6, (50, 140, 60), 0.4),
    Colour(93, "Dark Green", 4, 6, (25, 70, 40), 0.6),
    Colour(94, "Mole", 3, 11, (120, 105, 95), 0.4),
    Colour(95, "Bronze/Copper", 6, 10, (180, 110, 60), 0.2),
    Colour(96, "Transparent", 6, 1, (235, 240, 245), 0.1),
    Colour(97, "Other Purple", 6, 9, (150, 110, 150), 0.1),
)

# Colour families a style cluster draws its palette from (names of COLOURS).
PALETTES: dict[str, tuple[str, ...]] = {
    "monochrome": ("Black", "White", "Grey", "Light Grey", "Dark Grey", "Off White"),
    "navy": ("Dark Blue", "Blue", "Light Blue", "White", "Off White", "Other Blue"),
    "earthy": ("Beige", "Light Beige", "Yellowish Brown", "Greenish Khaki", "Dark Green", "Mole", "Dark Beige"),
    "pastel": ("Light Pink", "Light Blue", "Light Purple", "Light Yellow", "Light Turquoise", "Light Green",
               "Off White"),
    "bright": ("Red", "Yellow", "Orange", "Turquoise", "Pink", "Green", "Blue", "Purple"),
    "dark": ("Black", "Dark Red", "Dark Green", "Dark Blue", "Dark Grey", "Dark Purple", "Dark Pink"),
    "kids": ("Light Pink", "Light Blue", "Yellow", "Red", "White", "Blue", "Green", "Light Yellow"),
    "metal": ("Gold", "Silver", "Black", "White", "Bronze/Copper", "Transparent"),
    "denim": ("Light Blue", "Blue", "Dark Blue", "Black", "Grey", "Other Blue"),
}

# graphical_appearance_no -> (name, drawn pattern)
GRAPHICS: dict[int, tuple[str, str]] = {
    1010016: ("Solid", "solid"),
    1010001: ("All over pattern", "allover"),
    1010017: ("Stripe", "stripe"),
    1010010: ("Melange", "melange"),
    1010008: ("Front print", "print"),
    1010002: ("Application/3D", "application"),
    1010004: ("Check", "check"),
    1010005: ("Colour blocking", "blocking"),
    1010006: ("Denim", "denim"),
    1010007: ("Embroidery", "embroidery"),
    1010009: ("Glittering/Metallic", "glitter"),
    1010011: ("Lace", "lace"),
    1010012: ("Mixed solid/pattern", "blocking"),
    1010013: ("Neps", "melange"),
    1010014: ("Placement print", "print"),
    1010015: ("Sequin", "glitter"),
    1010018: ("Treatment", "melange"),
    1010019: ("Chambray", "denim"),
    1010020: ("Contrast", "blocking"),
    1010021: ("Metallic", "glitter"),
    1010022: ("Jacquard", "diamond"),
    1010023: ("Argyle", "diamond"),
    1010024: ("Other pattern", "allover"),
    1010025: ("Mesh", "lace"),
    1010026: ("Hologram", "glitter"),
    1010027: ("Slub", "melange"),
    1010028: ("Other structure", "melange"),
    1010029: ("Transparent", "lace"),
    1010003: ("Dot", "dot"),
    -1: ("Unknown", "solid"),
}

# Graphic mixes a cluster draws from: weight of each graphical_appearance_no.
GRAPHIC_STYLES: dict[str, dict[int, float]] = {
    "basic": {1010016: 8, 1010010: 2, 1010017: 1, 1010001: 0.5},
    "print": {1010016: 3, 1010001: 3, 1010008: 2, 1010014: 1, 1010003: 1, 1010017: 1},
    "fancy": {1010016: 3, 1010002: 1, 1010007: 1, 1010009: 1, 1010011: 1, 1010015: 0.5, 1010021: 0.5,
              1010025: 0.3, 1010029: 0.3, 1010026: 0.1},
    "classic": {1010016: 5, 1010017: 2, 1010004: 1.5, 1010022: 0.5, 1010023: 0.3, 1010024: 0.3, 1010012: 0.5,
                1010020: 0.3},
    "denim": {1010006: 6, 1010016: 2, 1010019: 1, 1010018: 1, 1010027: 0.3},
    "knit": {1010016: 4, 1010010: 3, 1010013: 0.5, 1010022: 1, 1010028: 0.5, 1010017: 1},
    "kids": {1010016: 3, 1010001: 3, 1010008: 3, 1010017: 2, 1010003: 1, 1010005: 1, 1010002: 0.5},
}


@dataclass(frozen=True)
class ProductType:
    no: int
    name: str
    group: str       # product_group_name
    shape: str       # silhouette drawn in the image
    season: float    # +1 summer peak .. -1 winter peak, 0 none
    price: float     # typical shelf price (SEK/590 scale units, i.e. 9.99 -> 9.99)
    role: str        # outfit role: U upper, L lower, F full body, O outer, I inner/swim, A accessory
    garment: int     # default garment_group_no
    weight: float    # how common the type is inside an index that sells it


PRODUCT_TYPES: tuple[ProductType, ...] = (
    ProductType(253, "Vest top", "Garment Upper body", "vest", 0.4, 9.99, "U", 1002, 3.0),
    ProductType(255, "T-shirt", "Garment Upper body", "tshirt", 0.2, 9.99, "U", 1002, 3.0),
    ProductType(254, "Top", "Garment Upper body", "top", 0.0, 14.99, "U", 1005, 2.5),
    ProductType(258, "Blouse", "Garment Upper body", "blouse", 0.1, 24.99, "U", 1010, 2.0),
    ProductType(274, "Shirt", "Garment Upper body", "shirt", 0.0, 24.99, "U", 1021, 1.5),
    ProductType(252, "Sweater", "Garment Upper body", "sweater", -0.6, 24.99, "U", 1003, 2.5),
    ProductType(245, "Cardigan", "Garment Upper body", "cardigan", -0.4, 29.99, "U", 1003, 1.0),
    ProductType(304, "Hoodie", "Garment Upper body", "hoodie", -0.4, 24.99, "U", 1005, 1.5),
    ProductType(260, "Polo shirt", "Garment Upper body", "tshirt", 0.4, 14.99, "U", 1002, 0.4),
    ProductType(264, "Jacket", "Garment Upper body", "jacket", -0.5, 49.99, "O", 1007, 1.5),
    ProductType(262, "Coat", "Garment Upper body", "coat", -0.9, 79.99, "O", 1007, 0.6),
    ProductType(257, "Blazer", "Garment Upper body", "blazer", 0.0, 49.99, "O", 1008, 0.7),
    ProductType(272, "Trousers", "Garment Lower body", "trousers", 0.0, 24.99, "L", 1009, 3.5),
    ProductType(259, "Shorts", "Garment Lower body", "shorts", 1.0, 14.99, "L", 1011, 1.5),
    ProductType(275, "Skirt", "Garment Lower body", "skirt", 0.4, 19.99, "L", 1014, 1.3),
    ProductType(273, "Leggings/Tights", "Garment Lower body", "leggings", -0.1, 9.99, "L", 1002, 1.5),
    ProductType(265, "Dress", "Garment Full body", "dress", 0.6, 29.99, "F", 1013, 3.0),
    ProductType(266, "Jumpsuit/Playsuit", "Garment Full body", "jumpsuit", 0.6, 29.99, "F", 1013, 0.6),
    ProductType(268, "Garment Set", "Garment Full body", "garmentset", 0.0, 19.99, "F", 1006, 1.5),
    ProductType(267, "Bodysuit", "Garment Upper body", "bodysuit", 0.0, 9.99, "U", 1002, 0.8),
    ProductType(306, "Bra", "Underwear", "bra", 0.0, 19.99, "I", 1017, 2.5),
    ProductType(286, "Underwear bottom", "Underwear", "brief", 0.0, 7.99, "I", 1017, 2.5),
    ProductType(302, "Socks", "Socks & Tights", "socks", -0.3, 4.99, "I", 1016, 1.5),
    ProductType(308, "Underwear Tights", "Socks & Tights", "leggings", -0.6, 9.99, "I", 1016, 0.8),
    ProductType(296, "Pyjama set", "Nightwear", "pyjama", -0.3, 24.99, "I", 1017, 1.0),
    ProductType(297, "Night gown", "Nightwear", "dress", 0.0, 19.99, "I", 1017, 0.4),
    ProductType(59, "Swimwear bottom", "Swimwear", "brief", 1.0, 9.99, "I", 1018, 1.2),
    ProductType(298, "Bikini top", "Swimwear", "bra", 1.0, 14.99, "I", 1018, 1.2),
    ProductType(60, "Swimsuit", "Swimwear", "swimsuit", 1.0, 19.99, "I", 1018, 0.8),
    ProductType(72, "Earring", "Accessories", "earring", 0.0, 7.99, "A", 1019, 1.5),
    ProductType(73, "Necklace", "Accessories", "necklace", 0.0, 9.99, "A", 1019, 1.0),
    ProductType(66, "Hat/beanie", "Accessories", "beanie", -0.8, 9.99, "A", 1019, 0.8),
    ProductType(67, "Cap/peaked", "Accessories", "cap", 0.4, 9.99, "A", 1019, 0.5),
    ProductType(77, "Scarf", "Accessories", "scarf", -0.8, 14.99, "A", 1019, 0.7),
    ProductType(78, "Gloves", "Accessories", "gloves", -1.0, 9.99, "A", 1019, 0.4),
    ProductType(80, "Belt", "Accessories", "belt", 0.0, 12.99, "A", 1019, 0.6),
    ProductType(83, "Sunglasses", "Accessories", "sunglasses", 0.9, 9.99, "A", 1019, 0.6),
    ProductType(84, "Hair clip", "Accessories", "hairclip", 0.0, 5.99, "A", 1019, 0.6),
    ProductType(85, "Hair/alice band", "Accessories", "hairband", 0.0, 5.99, "A", 1019, 0.5),
    ProductType(87, "Umbrella", "Accessories", "umbrella", -0.2, 14.99, "A", 1019, 0.1),
    ProductType(532, "Umbrella", "Items", "umbrella", -0.2, 19.99, "A", 1019, 0.05),
    ProductType(93, "Bag", "Bags", "bag", 0.0, 24.99, "A", 1019, 1.0),
    ProductType(95, "Cross-body bag", "Bags", "bag", 0.2, 19.99, "A", 1019, 0.4),
    ProductType(62, "Shoes", "Shoes", "shoe", 0.0, 29.99, "A", 1012, 0.5),
    ProductType(89, "Sneakers", "Shoes", "sneaker", 0.2, 29.99, "A", 1012, 0.8),
    ProductType(90, "Boots", "Shoes", "boot", -0.9, 49.99, "A", 1012, 0.6),
    ProductType(91, "Sandals", "Shoes", "sandal", 1.0, 19.99, "A", 1012, 0.6),
    ProductType(520, "Wallet", "Items", "wallet", 0.0, 12.99, "A", 1019, 0.2),
    ProductType(521, "Fine cosmetics", "Cosmetic", "bottle", 0.0, 7.99, "A", 1019, 0.15),
    ProductType(523, "Cushion", "Interior textile", "cushion", 0.0, 9.99, "A", 1019, 0.05),
    ProductType(524, "Stationery", "Stationery", "item", 0.0, 4.99, "A", 1019, 0.05),
    ProductType(525, "Toy", "Fun", "item", 0.0, 9.99, "A", 1019, 0.05),
    ProductType(526, "Clothing mist", "Garment and Shoe care", "bottle", 0.0, 5.99, "A", 1019, 0.05),
    ProductType(-1, "Unknown", "Unknown", "item", 0.0, 9.99, "A", 1001, 0.03),
)

# Which product types each index sells (by name; types sharing a name are all included).
INDEX_TYPES: dict[str, tuple[str, ...]] = {
    "A": ("Vest top", "T-shirt", "Top", "Blouse", "Shirt", "Sweater", "Cardigan", "Hoodie", "Jacket", "Coat",
          "Blazer", "Trousers", "Shorts", "Skirt", "Dress", "Jumpsuit/Playsuit", "Bodysuit", "Leggings/Tights"),
    "B": ("Bra", "Underwear bottom", "Socks", "Underwear Tights", "Pyjama set", "Night gown", "Swimwear bottom",
          "Bikini top", "Swimsuit", "Bodysuit"),
    "C": ("Earring", "Necklace", "Hat/beanie", "Scarf", "Gloves", "Belt", "Sunglasses", "Hair clip",
          "Hair/alice band", "Umbrella", "Bag", "Cross-body bag", "Shoes", "Sneakers", "Boots", "Sandals",
          "Wallet", "Fine cosmetics", "Cushion", "Stationery", "Clothing mist", "Unknown"),
    "D": ("Vest top", "T-shirt", "Top", "Blouse", "Sweater", "Hoodie", "Jacket", "Trousers", "Shorts", "Skirt",
          "Dress", "Jumpsuit/Playsuit", "Leggings/Tights", "Bra", "Earring", "Necklace", "Bag", "Hair clip",
          "Cap/peaked", "Sneakers", "Boots", "Swimwear bottom", "Bikini top"),
    "F": ("T-shirt", "Shirt", "Polo shirt", "Sweater", "Hoodie", "Jacket", "Coat", "Blazer", "Trousers", "Shorts",
          "Socks", "Underwear bottom", "Swimwear bottom", "Cap/peaked", "Hat/beanie", "Belt", "Sneakers", "Boots",
          "Pyjama set"),
    "G": ("Bodysuit", "Garment Set", "Trousers", "Top", "Dress", "Sweater", "Cardigan", "Socks", "Hat/beanie",
          "Pyjama set", "Jacket", "Leggings/Tights"),
    "H": ("T-shirt", "Top", "Trousers", "Shorts", "Dress", "Skirt", "Sweater", "Hoodie", "Jacket", "Garment Set",
          "Leggings/Tights", "Pyjama set", "Socks", "Shirt"),
    "I": ("T-shirt", "Top", "Vest top", "Trousers", "Shorts", "Dress", "Skirt", "Sweater", "Hoodie", "Jacket",
          "Leggings/Tights", "Pyjama set", "Shirt", "Blouse"),
    "J": ("Swimsuit", "Swimwear bottom", "Bikini top", "Hat/beanie", "Cap/peaked", "Bag", "Hair clip",
          "Hair/alice band", "Sneakers", "Sandals", "Boots", "Gloves", "Toy", "Sunglasses", "Socks"),
    "S": ("Leggings/Tights", "Vest top", "T-shirt", "Top", "Bra", "Shorts", "Jacket", "Hoodie", "Socks",
          "Trousers", "Swimsuit", "Cap/peaked"),
}

# section_no -> (section_name, index_code). Codes map many-to-one onto names ("Kids Sports" twice).
SECTIONS: dict[int, tuple[str, str]] = {
    16: ("Womens Everyday Basics", "A"),
    15: ("Womens Everyday Collection", "A"),
    18: ("Womens Trend", "A"),
    11: ("Womens Tailoring", "A"),
    6: ("Womens Casual", "A"),
    19: ("Mama", "A"),
    31: ("Womens Premium", "A"),
    61: ("Womens Lingerie", "B"),
    62: ("Womens Nightwear, Socks & Tigh", "B"),
    60: ("Womens Swimwear, beachwear", "B"),
    65: ("Womens Big accessories", "C"),
    66: ("Womens Small accessories", "C"),
    64: ("Womens Shoes", "C"),
    53: ("Divided Collection", "D"),
    52: ("Divided Basics", "D"),
    51: ("Divided Projects", "D"),
    50: ("Divided Accessories", "D"),
    57: ("Ladies Denim", "D"),
    56: ("Divided Selected", "D"),
    21: ("Contemporary Casual", "F"),
    23: ("Contemporary Street", "F"),
    20: ("Contemporary Smart", "F"),
    25: ("Men Suits & Tailoring", "F"),
    26: ("Men Underwear", "F"),
    27: ("Men Accessories", "F"),
    29: ("Men Shoes", "F"),
    41: ("Baby Essentials & Complements", "G"),
    42: ("Baby Girl", "G"),
    44: ("Baby Boy", "G"),
    43: ("Kids Girl", "H"),
    45: ("Kids Boy", "H"),
    46: ("Kids Outerwear", "H"),
    77: ("Young Girl", "I"),
    76: ("Young Boy", "I"),
    72: ("Kids Sports", "I"),
    47: ("Kids Accessories, Swimwear & D", "J"),
    48: ("Kids & Baby Shoes", "J"),
    5: ("Ladies H&M Sport", "S"),
    8: ("Men H&M Sport", "S"),
    82: ("Kids Sports", "S"),
}

# Garment group an index uses for a type when it differs from the type's default.
GARMENT_OVERRIDES: dict[tuple[str, str], int] = {
    **{(i, t): 1006 for i in "G" for t in ("Bodysuit", "Trousers", "Top", "Dress", "Sweater", "Cardigan",
                                           "Jacket", "Leggings/Tights", "Pyjama set")},
    **{(i, "Dress"): 1020 for i in "HI"},
    **{(i, "Skirt"): 1020 for i in "HI"},
    ("D", "Trousers"): 1004,
}

# Short department names per garment group; several department codes share each name.
DEPARTMENT_NAMES: dict[int, tuple[str, ...]] = {
    1001: ("Other items",),
    1002: ("Jersey Basic", "Basic 1", "Jersey"),
    1003: ("Knitwear", "Tops Knitwear"),
    1004: ("Denim Trousers", "Trousers Denim"),
    1005: ("Jersey Fancy", "Tops Fancy Jersey", "Jersey fancy"),
    1006: ("Baby Basics", "Baby Nightwear", "Baby Girl Jersey"),
    1007: ("Outdoor", "Jacket Street", "Outwear"),
    1008: ("Blazer", "Dressed", "Suit"),
    1009: ("Trousers", "Woven bottoms"),
    1010: ("Blouse", "Woven top"),
    1011: ("Shorts",),
    1012: ("Shoes",),
    1013: ("Dresses", "Dress"),
    1014: ("Skirt",),
    1015: ("Special Offers",),
    1016: ("Socks", "Tights basic"),
    1017: ("Expressive Lingerie", "Casual Lingerie", "Nightwear", "Underwear Jersey"),
    1018: ("Swimwear",),
    1019: ("Accessories", "Small Accessories", "Big Accessories", "Jewellery"),
    1020: ("Girls Dresses", "Dresses & Skirts"),
    1021: ("Shirt", "Shirts"),
}

# Price grid (shelf prices) the generated prices snap to; max 349 keeps price/590 <= 0.5915.
PRICE_GRID: tuple[float, ...] = (
    2.99, 3.99, 4.99, 5.99, 6.99, 7.99, 8.99, 9.99, 12.99, 14.99, 17.99, 19.99, 24.99, 27.99, 29.99, 34.99,
    39.99, 44.99, 49.99, 59.99, 69.99, 79.99, 89.99, 99.99, 119.0, 149.0, 199.0, 249.0, 299.0, 349.0,
)
PRICE_DIVISOR = 590.0

# Words for product names and descriptions.
NAME_WORDS: tuple[str, ...] = (
    "Tilly", "Jade", "Luna", "Mira", "Ellie", "Nova", "Ava", "Iris", "Stella", "Maja", "Ida", "Alma", "Saga",
    "Tova", "Elsa", "Vera", "Nora", "Wilma", "Signe", "Freja", "Hedda", "Ebba", "Lova", "Siri", "Tuva", "Hanna",
    "Olivia", "Emma", "Clara", "Astrid", "Greta", "Linnea", "Moa", "Felicia", "Cleo", "Tess", "Zoe", "Lily",
    "Ruby", "Rosa", "Hugo", "Liam", "Noah", "Otto", "Leo", "Axel", "Elias", "Theo", "Sixten", "Malte", "Vince",
    "Billie", "Sam", "Robin", "Charlie", "Alex", "Kim", "Jules", "Max", "Rio", "Peppa", "Bobby", "Dixie",
    "Paris", "Milan", "Oslo", "Rome", "Nice", "Malmo", "Berlin", "Tokyo", "Lima", "Cairo", "Sydney", "Boston",
    "Berry", "Cherry", "Mango", "Lemon", "Peach", "Olive", "Pepper", "Sugar", "Honey", "Cocoa", "Ginger",
    "Daisy", "Tulip", "Lotus", "Poppy", "Violet", "Fern", "Willow", "Maple", "Cedar", "Ivy", "Sage", "Juniper",
)
NAME_QUALIFIERS: tuple[str, ...] = (
    "", "", "", "", "HW", "LW", "MW", "slim", "wide", "relaxed", "oversized", "fitted", "basic", "2-pack",
    "3-pack", "5-pack", "rib", "linen", "denim", "soft", "cropped", "long", "short", "jersey", "knit", "padded",
    "push", "straight", "skinny", "mom", "cargo", "chino", "tee", "tank", "fancy", "lace", "frill", "puff",
)
MATERIALS: tuple[str, ...] = (
    "soft cotton jersey", "organic cotton", "rib-knit fabric", "woven fabric", "stretch denim", "linen blend",
    "fine-knit viscose", "sweatshirt fabric", "recycled polyester", "chiffon", "satin", "lace", "wool blend",
    "soft fleece", "twill", "microfibre", "mesh", "faux leather", "seersucker", "corduroy",
)
DETAILS: dict[str, tuple[str, ...]] = {
    "U": ("a round neckline", "a V-neck", "long sleeves", "short sleeves", "narrow shoulder straps", "a collar",
          "buttons down the front", "dropped shoulders", "a wrapover front", "ribbing at the cuffs and hem"),
    "L": ("a high waist", "an elasticated waist", "side pockets", "a zip fly and button", "tapered legs",
          "wide legs", "a regular waist", "an adjustable drawstring", "raw-edge hems", "pleats at the front"),
    "F": ("a fitted bodice", "a flared skirt", "a V-neck", "puff sleeves", "a tie belt at the waist",
          "a concealed zip at the back", "narrow adjustable straps", "a smocked section", "a gathered seam"),
    "O": ("a lined hood", "a zip down the front", "flap pockets", "notch lapels", "a stand-up collar",
          "a single-breasted fastening", "padded shoulders", "ribbed cuffs"),
    "I": ("lined cups", "underwired cups", "adjustable straps", "a fully lined gusset", "a low waist",
          "elastication at the back", "a hook-and-eye fastening", "a covered elastic waistband"),
    "A": ("a metal clasp", "an adjustable strap", "a removable chain", "decorative stones", "a snap fastener",
          "a magnetic closure", "an inner pocket", "a rubber sole", "a padded footbed", "a glossy finish"),
}
