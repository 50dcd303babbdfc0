"""The collector's reports (issue 18): functions returning rows and objects, shared by the commands
(collector/commands/) and the web page, which only format them."""
