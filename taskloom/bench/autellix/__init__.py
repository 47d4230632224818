"""Program-aware scheduling (Autellix) on the simulated H100: the library behind
`benchmarks/autellix.py`.

- `variants`: scheduler configurations and the factory each is registered under;
- `oracle`: the SJF oracle's true remaining work;
- `points`: one point on fresh simulated engines, as a JSON-ready record;
- `store`: many points in parallel processes, kept in `points.json`;
- `specs`: which points each command runs;
- `analysis` and `ceilings`: what the points say;
- `report`: `summary.json`, plots and the sweep table.
"""
