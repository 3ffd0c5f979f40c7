"""fashionrec: visual fashion recommendation.

Data flows one way: catalogue -> embedder -> store -> recommender -> CLI / API / web.
The public Python entry point is :class:`fashionrec.recommend.Recommender`.
"""

__version__ = "0.1.0"
