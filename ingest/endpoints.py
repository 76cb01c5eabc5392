"""The head's dashboard endpoints a collector keeps snapshots of (`ingest.snapshots`).

Apart, so that the command line can name them without loading Arrow: `raylake collect`
chooses Arrow's memory pool before Arrow loads.
"""

#: Endpoint name -> path on the dashboard. The version comes first: it names the
#: session the other answers belong to.
ENDPOINTS: dict[str, str] = {
    "version": "/api/version",
    "jobs": "/api/jobs/",
    "placement_groups": "/api/v0/placement_groups?detail=1&limit=10000",
    "serve_applications": "/api/serve/applications/",
    "cluster_metadata": "/api/v0/cluster_metadata",
    "timezone": "/timezone",
}
