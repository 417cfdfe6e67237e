"""Prompt Atlas core library: soft prompts in and out, tasks, training, metrics,
projections and runs. Never imports Streamlit; every page's numbers can be
computed from here (``python -m core --help``)."""

__version__ = "0.1.0"
