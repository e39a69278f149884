// pgjdbc (Debian's libpostgresql-jdbc-java) against InsightFlow: DatabaseMetaData
// getTables / getColumns, a fetch-size query (named portal resumed across Syncs inside a
// transaction) and a prepared statement; prints key=value lines for the Python test.
import java.sql.*;

public class PgJdbc {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        try (Connection conn = DriverManager.getConnection(url, args[1], args[2])) {
            DatabaseMetaData meta = conn.getMetaData();
            System.out.println("product=" + meta.getDatabaseProductName() + " " + meta.getDatabaseProductVersion());
            StringBuilder tables = new StringBuilder();
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) {
                    tables.append(rs.getString("TABLE_NAME")).append(':').append(rs.getString("TABLE_TYPE")).append(',');
                }
            }
            System.out.println("tables=" + tables);
            StringBuilder columns = new StringBuilder();
            try (ResultSet rs = meta.getColumns(null, "public", "sales", "%")) {
                while (rs.next()) {
                    columns.append(rs.getString("COLUMN_NAME")).append(':').append(rs.getString("TYPE_NAME")).append(',');
                }
            }
            System.out.println("columns=" + columns);
            try (ResultSet rs = meta.getPrimaryKeys(null, "public", "sales")) {
                int n = 0;
                while (rs.next()) n++;
                System.out.println("primary_keys=" + n);
            }

            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(7);
                long rows = 0, sum = 0;
                try (ResultSet rs = st.executeQuery("SELECT order_id FROM sales ORDER BY order_id")) {
                    while (rs.next()) {
                        rows++;
                        sum += rs.getLong(1);
                    }
                }
                System.out.println("fetched=" + rows + " sum=" + sum);
            }
            conn.commit();
            conn.setAutoCommit(true);
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM sales WHERE region = ?")) {
                for (String region : new String[] {"North", "South", "East", "West", "North", "South"}) {
                    ps.setString(1, region);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        System.out.println("count_" + region + "=" + rs.getLong(1));
                    }
                }
            }
        }
    }
}
