-- A tour of InsightFlow from psql:
--   psql -h 127.0.0.1 -p 5433 -U admin -d insightflow -f clients/psql/tour.sql
\echo 'Tables of the demo data set'
\dt
\d sales

\echo 'Revenue by region'
SELECT region, count(*) AS orders, round(sum(revenue), 2) AS revenue
FROM sales GROUP BY region ORDER BY revenue DESC;

\echo 'Monthly revenue in 2025'
SELECT date_trunc('month', order_date) AS month, round(sum(revenue), 2) AS revenue
FROM sales WHERE order_date >= DATE '2025-01-01'
GROUP BY 1 ORDER BY 1;

\echo 'Best-selling products'
SELECT p.name, p.category, sum(s.quantity) AS units
FROM sales s JOIN products p USING (product_id)
GROUP BY p.name, p.category ORDER BY units DESC LIMIT 5;
