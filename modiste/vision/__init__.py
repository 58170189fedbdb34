"""Image encoders trained here: attribute probes, features for ranking, FID and design judging."""
