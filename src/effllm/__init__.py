"""Shared code for the course *Efficient LLMs and the DeepSeek Moment*.

A flat package, one idea per module: the models the labs train (a small transformer, its
attention variants and mixture of experts), reinforcement learning with verifiable rewards, the
money side (training and serving costs, token prices, capital spending, share prices), and the
helpers every lab uses (presets and device, plots, data files, book glue, the checks of what
students write). The labs import
from here and show the key lines they teach. The "Layout" section of the repository's README
lists the modules.
"""

__version__ = "0.1.0"
