"""HTTP routes, one module per area; each translates HTTP to service calls and back."""
