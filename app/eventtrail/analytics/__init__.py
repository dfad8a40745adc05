"""User analytics and recommendations, computed from any store's exact primitives."""
