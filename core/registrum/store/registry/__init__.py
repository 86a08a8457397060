"""The model registry: models, versions, aliases and what each version was evaluated on."""
