"""Views: the Flask blueprints (``api``, ``tiles``, ``viewer``, ``compare``)."""
