"""The application layer: Farm's use cases, over ports the front ends wire adapters into.

`Farm` (farm.app.service) is the object a command builds once; the use cases are in
campaigns, status, calibrate, embedded, recover and reports (report, compare, export);
`publish` is how every one of them sends jobs; farm.app.ports, farm.app.reports'
ReportQueries and farm.broker name what they need from the outside.
"""
