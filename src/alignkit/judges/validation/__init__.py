"""Judge validation, one home for what is measured about a judge (the numbers its card quotes).

- :mod:`~alignkit.judges.validation.ood`: the out-of-distribution protocols (leave one category out, harm ->
  refusal, refusal -> harm), re-fitting the recipe per protocol, and the phi margin (refusal noise);
- :mod:`~alignkit.judges.validation.probe_set`: the hand-written probe set (never trained on);
- :mod:`~alignkit.judges.validation.real_generations`: hand-labelled SmolLM2 generations (``data/``);
- :mod:`~alignkit.judges.validation.human_ceiling`: one pyrit annotator against the others;
- :mod:`~alignkit.judges.validation.labels`: any judge against the held-out ``judge-labels`` split.
"""
