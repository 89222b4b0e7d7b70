"""The site configuration (`site`: limits, electrode and drug catalogs, protocol presets, from TOML) and who
may change it (`authority`: approvals and changes, signed by a named supervisor in the audit trail; the
accounts themselves are `people`).

    config = load_config(path_or_None)        # ConfigError names the key and its line
    require_approved(config, store)           # ConfigNotApproved for a hand-edited file
    rx = config.preset("dexamethasone").prescription(patient_id=..., operator_id=..., electrode_area_cm2=10)
"""

from ionctl.config.authority import (
    ConfigNotApproved,
    approve,
    approved_sha256,
    require_approved,
    set_value,
)
from ionctl.config.site import (
    ConfigError,
    CoursePlan,
    DrugEntry,
    Electrode,
    Preset,
    SiteConfig,
    default_path,
    load_config,
    parse_config,
)

__all__ = [
    "ConfigError",
    "ConfigNotApproved",
    "CoursePlan",
    "DrugEntry",
    "Electrode",
    "Preset",
    "SiteConfig",
    "approve",
    "approved_sha256",
    "default_path",
    "load_config",
    "parse_config",
    "require_approved",
    "set_value",
]
