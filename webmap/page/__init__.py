"""Page: assembly of the offline Folium (Leaflet) viewer page and its markers."""
