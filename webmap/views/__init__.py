"""Views: the Flask blueprints (``api``, ``tiles``, ``viewer``, ``find``, ``downloads``,
``compare``) and their shared responders (``responses``)."""
