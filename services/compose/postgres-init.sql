-- One database per service (docker-compose.yml): each service owns its data.
CREATE DATABASE inventory;
CREATE DATABASE pricing;
CREATE DATABASE orders;
