"""The research-use notice shown wherever model output appears."""

RESEARCH_NOTICE = (
    "Research use only: model results are decision support for a qualified reader, "
    "not a diagnosis. Not approved for clinical use."
)
