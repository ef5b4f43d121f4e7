"""Feature keys, the label key and the feature names of each embedded data set: the one place for these constants."""

LABEL_KEY = "label"
TIMESTAMP_KEY = "prediction_time"
VALUE_BUCKET_KEY = "value_bucket"

# Column of every Feast feature table (FileSource.timestamp_field) and of the entity frame Feast reads.
EVENT_TIMESTAMP_KEY = "event_timestamp"


def transformed_name(key: str) -> str:
    """Returns the name Transform gives the transformed version of `key`."""
    return key + "_xf"


def piecewise_linear_name(key: str) -> str:
    """Returns the name of numeric feature `key`'s piecewise-linear encoding (model.numeric_encoding)."""
    return key + "_ple"


# CDNOW (lifetimes package): one example per customer, predicted at the end of the first purchase day.
CDNOW_ENTITY_COLUMNS = ("customer_id",)
CDNOW_NUMERIC_FEATURES = ("total_spend", "total_cds", "num_purchases", "days_active")
CDNOW_CATEGORICAL_FEATURES = ("first_purchase_month", "first_purchase_weekday")

# CDNOW scored at monthly cut-offs: one example per (customer, cut-off), features as of the end of the cut-off day.
CDNOW_SNAPSHOTS_ENTITY_COLUMNS = ("customer_id",)
CDNOW_SNAPSHOT_WINDOWS_DAYS = (30, 90, 180)
CDNOW_SNAPSHOTS_NUMERIC_FEATURES = (
    "frequency",
    "recency_days",
    "customer_age_days",
    "days_since_last_purchase",
    "monetary_value",
    "avg_order_value",
    "first_order_value",
    "total_spend",
    "total_cds",
    "num_purchases",
) + tuple(
    f"{quantity}_{days}d" for days in CDNOW_SNAPSHOT_WINDOWS_DAYS for quantity in ("spend", "cds", "purchases")
)
CDNOW_SNAPSHOTS_CATEGORICAL_FEATURES = ("cohort",)

# Seeded synthetic customer lifetime value: one example per customer, predicted at the end of the first order day.
SYNTHETIC_LTV_ENTITY_COLUMNS = ("customer_id",)
SYNTHETIC_LTV_NUMERIC_FEATURES = (
    "first_order_value",
    "first_order_items",
    "discount_share",
    "orders_to_date",
    "spend_to_date",
)
SYNTHETIC_LTV_CATEGORICAL_FEATURES = ("channel", "country", "device")

# Seeded synthetic watch time: one example per impression (user, item), predicted at the impression time.
WATCH_TIME_ENTITY_COLUMNS = ("user_id", "item_id")
WATCH_TIME_USER_NUMERIC_FEATURES = ("user_activity",)
WATCH_TIME_USER_CATEGORICAL_FEATURES = ("user_favorite_category",)
WATCH_TIME_ITEM_NUMERIC_FEATURES = ("video_duration",)
WATCH_TIME_ITEM_CATEGORICAL_FEATURES = ("item_category",)
WATCH_TIME_NUMERIC_FEATURES = WATCH_TIME_USER_NUMERIC_FEATURES + WATCH_TIME_ITEM_NUMERIC_FEATURES
WATCH_TIME_CATEGORICAL_FEATURES = WATCH_TIME_USER_CATEGORICAL_FEATURES + WATCH_TIME_ITEM_CATEGORICAL_FEATURES

# Vocabularies of the categorical features (the curated schemas list the same values in their string domains).
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CDNOW_FIRST_PURCHASE_MONTHS = ("1997-01", "1997-02", "1997-03")  # also the cohorts of cdnow_snapshots
CHANNELS = ("search", "social", "email", "direct", "affiliate")
COUNTRIES = ("US", "GB", "DE", "FR", "BR")
DEVICES = ("ios", "android", "web")
VIDEO_CATEGORIES = ("news", "music", "gaming", "sports", "comedy", "education", "food", "travel")

# The serving signature (`serving_default`) of every model kind: these value outputs, in label units, and
# RQ-Reg's greedy codes; scoring writes them under the same names (the codes as `rq_codes`).
SERVING_VALUE_KEYS = ("prediction", "median", "lower", "upper")
SERVING_CODES_KEY = "codes"
# The second serving signature (models/serving.py): the same scoring as `serving_default` with ONE
# float32 output [B, 4 + L]: columns SERVING_VALUE_KEYS, then the L RQ codes (none for kinds without codes).
SERVING_PACKED_SIGNATURE = "score_packed"
SERVING_PACKED_KEY = "scores"

# Outputs of Transform that are not one-to-one with a raw feature.
TARGET_KEY = "target_xf"  # the label after the label transform (log1p by default)
CODES_KEY = "rq_codes"  # [L] residual-quantization codes of the target, coarse to fine
