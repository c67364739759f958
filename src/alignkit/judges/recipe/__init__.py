"""The judge recipe, one home for what a ``minilm`` version is made of.

- :mod:`~alignkit.judges.recipe.features`: frozen MiniLM embeddings, refusal phrases, prompt-completion
  similarity and the incoherence flag; :mod:`~alignkit.judges.recipe.lm_features`: a chat LM's residual stream;
- :mod:`~alignkit.judges.recipe.heads`: the refusal / harm heads, the relevance gate, the calibrated score and the
  loader every version shares (:class:`~alignkit.judges.recipe.heads.HeadsJudge`);
- :mod:`~alignkit.judges.recipe.training`: the training rows (pyrit human labels, templated rows of
  :mod:`~alignkit.judges.recipe.synthetic`, off-topic pairs of :mod:`~alignkit.judges.recipe.offtopic`), the
  feature cache and the byte-reproducible weights file.

A new version is one module (``judges/minilmN.py``: its config defaults, its judge class, its ``train`` and
``ood_table``) plus its card (``weights/minilm_judge_vN.card.json``, :mod:`alignkit.judges.card`).
"""
