"""Shared code for the course *Efficient LLMs and the DeepSeek Moment*.

One idea per module: ``runtime`` (presets, device, seeds), ``plotting`` (the course's figure
style), ``datafiles`` (the small data sets shipped with the package), ``economics`` (training and
serving cost arithmetic). The labs import from here and show the key lines they teach.
"""

__version__ = "0.1.0"
