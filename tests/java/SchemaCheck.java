import java.io.File;
import java.util.ArrayList;
import java.util.List;
import javax.xml.XMLConstants;
import javax.xml.transform.stream.StreamSource;
import javax.xml.validation.Schema;
import javax.xml.validation.SchemaFactory;
import javax.xml.validation.Validator;
import org.xml.sax.ErrorHandler;
import org.xml.sax.SAXParseException;

/**
 * Validates SBE message schemas against SBE's own XML schema (sbe.xsd, shipped inside
 * sbe-tool.jar as fpl/sbe.xsd and read from the classpath). Prints one line per problem
 * and "SCHEMA_OK file" per clean file; exits 1 if any file has a problem.
 *
 * Usage: java -cp sbe-tool.jar SchemaCheck.java SCHEMA.xml...
 */
public final class SchemaCheck
{
    public static void main(final String[] args) throws Exception
    {
        final SchemaFactory factory = SchemaFactory.newInstance(XMLConstants.W3C_XML_SCHEMA_NS_URI);
        final java.net.URL xsdUrl = SchemaCheck.class.getResource("/fpl/sbe.xsd");
        if (null == xsdUrl)
        {
            System.out.println("SCHEMA_PROBLEM fpl/sbe.xsd is not on the classpath (add sbe-tool.jar)");
            System.exit(2);
        }
        final Schema xsd = factory.newSchema(xsdUrl);
        boolean allOk = true;
        for (int i = 0; i < args.length; i++)
        {
            final List<String> problems = new ArrayList<>();
            final Validator validator = xsd.newValidator();
            validator.setErrorHandler(new ErrorHandler()
            {
                public void warning(final SAXParseException e)
                {
                    problems.add("warning " + where(e));
                }

                public void error(final SAXParseException e)
                {
                    problems.add("error " + where(e));
                }

                public void fatalError(final SAXParseException e)
                {
                    problems.add("fatal " + where(e));
                }
            });
            validator.validate(new StreamSource(new File(args[i])));
            for (final String p : problems)
            {
                System.out.println("SCHEMA_PROBLEM " + args[i] + ": " + p);
            }
            if (problems.isEmpty())
            {
                System.out.println("SCHEMA_OK " + args[i]);
            }
            allOk &= problems.isEmpty();
        }
        System.exit(allOk ? 0 : 1);
    }

    private static String where(final SAXParseException e)
    {
        return "line " + e.getLineNumber() + ": " + e.getMessage();
    }
}
