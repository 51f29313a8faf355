"""Inter-rater agreement coefficients: pure numpy, no I/O.

Every coefficient reads a reliability matrix of shape ``(M raters, N units)``, float, with
NaN where a rater gave no value. Categories must already be coded as numbers; use
:func:`pivot` to go from long format (one row per judgement) to that matrix.

The package is split by family; this module hands on the public names:

- :mod:`annotate.agreement.alpha`: Krippendorff's alpha and its coincidence matrix;
- :mod:`annotate.agreement.kappa`: Fleiss', Cohen's kappa, Gwet's AC1 / AC2, percent
  agreement;
- :mod:`annotate.agreement.icc`: intraclass correlations (two-way for complete designs,
  one-way for incomplete ones) and Lin's CCC;
- :mod:`annotate.agreement.pairwise`: every pair of raters, with the units they share;
- :mod:`annotate.agreement.intervals`: the one bootstrap every interval comes from;
- :mod:`annotate.agreement.matrix`: validation and :func:`pivot`;
- :mod:`annotate.agreement.links`: agreement on the turns matched shifts are linked to.
"""

from annotate.agreement.alpha import (
    LEVELS,
    alpha_from_coincidences,
    coincidence_matrix,
    krippendorff_alpha,
    unit_coincidences,
)
from annotate.agreement.continuous import icc_report
from annotate.agreement.icc import (
    ICC_FORMS,
    icc,
    icc_oneway,
    icc_oneway_f_ci,
    icc_table,
    lin_ccc,
    mean_pairwise_ccc,
)
from annotate.agreement.intervals import (
    CONFIDENCE,
    N_BOOT,
    SEED,
    Interval,
    alpha_interval,
    bootstrap_ci,
    profile_interval,
    profiles_of,
    unit_interval,
)
from annotate.agreement.kappa import (
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    gwet_ac1,
    gwet_ac2,
    percent_agreement,
)
from annotate.agreement.matrix import pivot
from annotate.agreement.pairwise import (
    MIN_OVERLAP,
    Pairs,
    annotator_vs_rest,
    pair_units,
    pairwise_alpha,
    pairwise_alpha_matrix,
    pairwise_statistic,
)

__all__ = [
    "CONFIDENCE",
    "ICC_FORMS",
    "LEVELS",
    "MIN_OVERLAP",
    "N_BOOT",
    "SEED",
    "Interval",
    "Pairs",
    "alpha_from_coincidences",
    "alpha_interval",
    "annotator_vs_rest",
    "bootstrap_ci",
    "cohen_kappa",
    "coincidence_matrix",
    "fleiss_kappa",
    "fleiss_kappa_from_counts",
    "gwet_ac1",
    "gwet_ac2",
    "icc",
    "icc_oneway",
    "icc_oneway_f_ci",
    "icc_report",
    "icc_table",
    "krippendorff_alpha",
    "lin_ccc",
    "mean_pairwise_ccc",
    "pair_units",
    "pairwise_alpha",
    "pairwise_alpha_matrix",
    "pairwise_statistic",
    "percent_agreement",
    "pivot",
    "profile_interval",
    "profiles_of",
    "unit_coincidences",
    "unit_interval",
]
