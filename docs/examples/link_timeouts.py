# tested on: no database
from romancy_trio import AppConfig

link = AppConfig(lease_ttl=5.0).link_timeouts()  # what every connection gets by default
assert (link.keepalives_idle, link.keepalives_interval, link.keepalives_count,
        link.tcp_user_timeout) == (2, 1, 3, 5000)
assert AppConfig(lease_ttl=30.0).link_timeouts().window == 30.0  # idle + interval * count
# your own values, at both ends of every connection:
url = ("postgresql://app@db.example/app?keepalives_idle=10&keepalives_interval=5"
       "&keepalives_count=4&tcp_user_timeout=30000")
print(link)
