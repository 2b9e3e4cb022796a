"""Reports as pure data, no SQL: cells, selectors, the blog's layout, exports, comparisons.

`farm.db.reports` fills the cells from the database; `farm.app.reports` runs the use cases.
"""
