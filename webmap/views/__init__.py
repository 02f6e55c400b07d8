"""Views: the Flask blueprints and their shared responders.

``api``, ``tiles``, ``viewer``, ``find``, ``downloads``, ``compare``; ``responses`` holds the
responders they share.
"""
