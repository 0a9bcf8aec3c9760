"""Small Qt helpers every area uses: background jobs, network job pool, the scroll-wheel guard."""
