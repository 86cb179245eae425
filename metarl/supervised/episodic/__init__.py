"""Few-shot classifiers that answer a query from its episode's labelled support set in one
forward pass, with no gradient step at test time: the metric family (Prototypical, Matching,
Relation and Siamese networks) and the black-box family (a memory-augmented network)."""
