"""config.data.sources: "name:tfds_name,name:tfds_name" -> {name: tfds_name}."""


def parse_sources(spec: str) -> dict[str, str]:
  """Names are the MultiReader source names; TFDS names may contain '/' (name/config)."""
  sources = {}
  for item in spec.split(","):
    name, sep, tfds_name = item.strip().partition(":")
    if not sep or not name or not tfds_name:
      raise ValueError(f"config.data.sources: {item!r} is not 'name:tfds_name' (in {spec!r})")
    if name in sources:
      raise ValueError(f"config.data.sources: source {name!r} is given twice (in {spec!r})")
    sources[name] = tfds_name
  return sources
